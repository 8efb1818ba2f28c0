"""The audit log page: who, when (Asia/Shanghai), what, about what and why; newest first, paged, filtered."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import AuditEntry


@pytest.fixture
def log(app, operator):
    """Five decisions, one a minute from 2026-01-01 00:00 UTC (08:00 in Shenyang), the last one newest."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    actions = [("merchant.approve", "merchant:1", "licence checked"), ("campaign.reject", "campaign:7", "blurry image"),
               ("rules.new_version", "rule_version:2", "greener grid"), ("campaign.approve", "campaign:8", "ok"),
               ("campaign.feature", "campaign:8", "<b>spring</b> promotion")]
    for n, (action, subject, reason) in enumerate(actions):
        db.session.add(AuditEntry(at=start + timedelta(minutes=n), actor_id=operator.id, actor_label=operator.email,
                                  action=action, subject=subject, reason=reason))
    commit_unit_of_work()


def rows(html: str) -> list[str]:
    """The subjects of the listed entries, in page order."""
    return [re.search(r'data-label="Subject">([^<]*)<', row).group(1)
            for row in re.findall(r'<tr data-id="\d+">.*?</tr>', html, flags=re.S)]


def test_newest_first_with_who_when_why(log, get_en):
    """Entries are listed newest first, with the operator, the time in Shenyang, the action, subject and reason
    (escaped)."""
    html = get_en("/backoffice/audit").get_data(as_text=True)
    assert rows(html) == ["campaign:8", "campaign:8", "rule_version:2", "campaign:7", "merchant:1"]
    assert "2026-01-01 08:04:00" in html and "ops@metro.example" in html
    assert '<span title="campaign.feature">Campaign featured on kiosks</span>' in html
    assert "&lt;b&gt;spring&lt;/b&gt; promotion" in html


def test_filter_by_action_prefix(log, get_en):
    """?action= keeps the entries whose action starts with it; wildcards in it are taken literally."""
    html = get_en("/backoffice/audit?action=campaign.").get_data(as_text=True)
    assert rows(html) == ["campaign:8", "campaign:8", "campaign:7"]
    assert rows(get_en("/backoffice/audit?action=rules").get_data(as_text=True)) == ["rule_version:2"]
    assert "No entries." in get_en("/backoffice/audit?action=%25").get_data(as_text=True)
    assert "No entries." in get_en("/backoffice/audit?action=campaign_").get_data(as_text=True)


def test_pages_follow_a_cursor(log, get_en, monkeypatch):
    """A page holds a fixed number of entries; the next-page link continues where it stopped, keeping the filter."""
    from metropoints.reports import views

    monkeypatch.setattr(views, "AUDIT_PAGE_SIZE", 2)
    first = get_en("/backoffice/audit").get_data(as_text=True)
    assert rows(first) == ["campaign:8", "campaign:8"]
    link = re.search(r'<a href="([^"]+)" rel="next">', first).group(1).replace("&amp;", "&")
    second = get_en(link).get_data(as_text=True)
    assert rows(second) == ["rule_version:2", "campaign:7"]
    third = get_en(re.search(r'<a href="([^"]+)" rel="next">', second).group(1)).get_data(as_text=True)
    assert rows(third) == ["merchant:1"] and 'rel="next"' not in third
    filtered = get_en("/backoffice/audit?action=campaign").get_data(as_text=True)
    link = re.search(r'<a href="([^"]+)" rel="next">', filtered).group(1).replace("&amp;", "&")
    assert "action=campaign" in link and rows(get_en(link).get_data(as_text=True)) == ["campaign:7"]


def test_rule_change_from_the_form_is_listed(operator, post_en, get_en):
    """A rule version added through the back office appears in the log under the operator's name, with the why."""
    post_en("/backoffice/rules", {"points_per_km": "1", "daily_cap": "60", "co2e_factor": "44",
                                  "factor_name": "Same as before", "note": "Restating the factor source"})
    html = get_en("/backoffice/audit?action=rules.").get_data(as_text=True)
    assert rows(html) == ["rule_version:2"]
    assert "ops@metro.example" in html and "Restating the factor source" in html


@pytest.mark.parametrize("before", ["2147483648", "0", "-1", "99999999999999999999", "1e3", "٣"])
def test_a_cursor_no_entry_can_have_is_a_404(log, get_en, before):
    """`?before=` past the id column's range, or not an id at all, is a 404, never a database error."""
    assert get_en(f"/backoffice/audit?before={before}").status_code == 404


def test_filter_by_actor_subject_and_dates(log, get_en, operator):
    """?actor=, ?subject= (prefixes) and ?from= / ?to= (days in Asia/Shanghai) narrow the log and the next-page
    link keeps them; an unreadable date is a 422 that says how to write it."""
    db.session.add(AuditEntry(at=datetime(2026, 1, 2, 17, 0, tzinfo=UTC), actor_id=None, actor_label="cli",
                              action="merchant.suspend", subject="merchant:1", reason="unpaid"))
    commit_unit_of_work()
    assert rows(get_en("/backoffice/audit?actor=cli").get_data(as_text=True)) == ["merchant:1"]
    assert rows(get_en("/backoffice/audit?subject=campaign:8").get_data(as_text=True)) == ["campaign:8", "campaign:8"]
    # 2026-01-02 17:00 UTC is 2026-01-03 01:00 in Shenyang: it belongs to the 3rd there.
    assert rows(get_en("/backoffice/audit?from=2026-01-03").get_data(as_text=True)) == ["merchant:1"]
    assert len(rows(get_en("/backoffice/audit?to=2026-01-01").get_data(as_text=True))) == 5
    bad = get_en("/backoffice/audit?from=3/1/2026")
    assert bad.status_code == 422 and "YYYY-MM-DD" in bad.get_data(as_text=True)


def test_entries_link_to_their_object(log, get_en):
    """An entry about a merchant or a campaign links to its back-office page; one about a rule version has none."""
    html = get_en("/backoffice/audit").get_data(as_text=True)
    assert 'href="/portal/backoffice/merchants/1"' in html and 'href="/portal/campaigns/review/8"' in html
    assert html.count(">Open</a>") == 4


def test_oldest_first_pages_forward_keeping_the_filter(log, get_en, monkeypatch):
    """?order=oldest lists the entries oldest first; its next-page link continues after the last one shown (an
    `after` cursor on the id, as `before` is newest first), keeping the order and the filter."""
    from metropoints.reports import views

    monkeypatch.setattr(views, "AUDIT_PAGE_SIZE", 2)
    first = get_en("/backoffice/audit?order=oldest").get_data(as_text=True)
    assert rows(first) == ["merchant:1", "campaign:7"]
    link = re.search(r'<a href="([^"]+)" rel="next">', first).group(1).replace("&amp;", "&")
    assert "order=oldest" in link and "after=" in link and ">Newer entries<" in first
    second = get_en(link).get_data(as_text=True)
    assert rows(second) == ["rule_version:2", "campaign:8"] and ">Oldest<" in second
    filtered = get_en("/backoffice/audit?action=campaign&order=oldest").get_data(as_text=True)
    assert rows(filtered) == ["campaign:7", "campaign:8"]
    link = re.search(r'<a href="([^"]+)" rel="next">', filtered).group(1).replace("&amp;", "&")
    assert rows(get_en(link).get_data(as_text=True)) == ["campaign:8"]


def test_the_order_choice_is_kept_and_unknown_orders_are_newest_first(log, get_en):
    """The filter form offers newest or oldest first with the current one selected; an order the page does not know
    is newest first; an `after` cursor that cannot be an id is a 404 like `before`."""
    oldest = get_en("/backoffice/audit?order=oldest").get_data(as_text=True)
    assert '<option value="oldest" selected>' in oldest
    assert rows(get_en("/backoffice/audit?order=sideways").get_data(as_text=True))[0] == "campaign:8"
    assert get_en("/backoffice/audit?order=oldest&after=0").status_code == 404


def test_a_filtered_page_searches_a_bounded_stretch(log, get_en, monkeypatch):
    """A filtered page searches at most AUDIT_SCAN entries below its cursor, however large the log: a rare match
    further down is reached through links that search on from where each page stopped, each match listed once."""
    from metropoints.reports import queries

    monkeypatch.setattr(queries, "AUDIT_SCAN", 2)
    html = get_en("/backoffice/audit?action=merchant").get_data(as_text=True)
    assert rows(html) == [] and "Searched the entries down to number 4" in html
    pages = [html]
    while link := re.search(r'<a href="([^"]+)" rel="next">', pages[-1]):
        pages.append(get_en(link.group(1).replace("&amp;", "&")).get_data(as_text=True))
    assert [rows(page) for page in pages] == [[], [], ["merchant:1"]]
    assert "older ones may match" not in pages[-1]
    assert rows(get_en("/backoffice/audit").get_data(as_text=True))[:2] == ["campaign:8", "campaign:8"]  # unfiltered
