"""The back office's merchant list: search (name, licence, contact, owner's e-mail), a status filter, sorting and
pages, each link keeping the other parameters; a page reads a bounded number of rows."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event

from metropoints.core.db import db
from metropoints.marketplace import queries
from metropoints.marketplace.models import MerchantStatus
from tests.marketplace.conftest import licence, login, page


def names(html: str) -> list[str]:
    """The merchants listed, in page order."""
    return re.findall(r'<tr data-merchant-id="\d+">\s*<td><a href="[^"]+">([^<]*)</a>', html)


def links(html: str, rel: str) -> str:
    """The href of the pager's link with that rel, unescaped."""
    return re.search(rf'<a href="([^"]+)" rel="{rel}">', html).group(1).replace("&amp;", "&")


@pytest.fixture
def back_office(client, create_operator, create_merchant):
    """Five merchants (applied in this order: Café Lu, Bo's Noodles, Anshan Tea applied, then Dalian Fish suspended,
    Erdao Bakery rejected) and an operator logged in."""
    create_merchant("Cafe Lu")
    create_merchant("Bo's Noodles", email="bo@noodles.example")
    create_merchant("Anshan Tea", status=MerchantStatus.applied)
    create_merchant("Dalian Fish", status=MerchantStatus.suspended)
    create_merchant("Erdao Bakery", status=MerchantStatus.rejected)
    login(client, create_operator().email)
    return client


def test_newest_application_first_by_default(back_office):
    """Without parameters the list shows every merchant, the newest application first."""
    html = page(back_office, "/portal/backoffice/merchants").get_data(as_text=True)
    assert names(html) == ["Erdao Bakery", "Dalian Fish", "Anshan Tea", "Bo&#39;s Noodles", "Cafe Lu"]


@pytest.mark.parametrize(("q", "found"), [
    ("noodles", ["Bo&#39;s Noodles"]),  # the name, any case
    ("BO@NOODLES", ["Bo&#39;s Noodles"]),  # the owner's e-mail
    (licence(3).lower(), ["Anshan Tea"]),  # the licence number
    ("Contact 4", ["Dalian Fish"]),  # the contact's name
    ("%", []),  # a wildcard is a character like any other
])
def test_search_finds_name_licence_contact_and_email(back_office, q, found):
    """?q= finds the text, in any case, in the name, licence number, contact or owner's e-mail; LIKE wildcards in it
    are taken literally."""
    html = page(back_office, "/portal/backoffice/merchants", query_string={"q": q}).get_data(as_text=True)
    assert names(html) == found


def test_status_filter_and_search_together(back_office):
    """?status= narrows to one status, also with a search; its links keep the search."""
    html = page(back_office, "/portal/backoffice/merchants?q=contact&status=approved").get_data(as_text=True)
    assert names(html) == ["Bo&#39;s Noodles", "Cafe Lu"]
    assert 'href="/portal/backoffice/merchants?q=contact&amp;status=suspended"' in html
    assert 'href="/portal/backoffice/merchants?q=contact"' in html  # "All" keeps the search, drops the status


def test_sorting_by_name_status_and_date(back_office):
    """?sort= name, status or applied with ?dir= asc or desc orders the list; a header's link flips the order of its
    own column and keeps the filter."""
    by_name = page(back_office, "/portal/backoffice/merchants?sort=name&dir=asc").get_data(as_text=True)
    assert names(by_name) == ["Anshan Tea", "Bo&#39;s Noodles", "Cafe Lu", "Dalian Fish", "Erdao Bakery"]
    assert 'href="/portal/backoffice/merchants?sort=name"' in by_name  # descending is the default direction
    by_status = page(back_office, "/portal/backoffice/merchants?sort=status&dir=asc").get_data(as_text=True)
    assert names(by_status)[0] == "Anshan Tea" and names(by_status)[-1] == "Dalian Fish"
    oldest = page(back_office, "/portal/backoffice/merchants?sort=applied&dir=asc&status=approved").get_data(
        as_text=True)
    assert names(oldest) == ["Cafe Lu", "Bo&#39;s Noodles"]
    assert 'href="/portal/backoffice/merchants?status=approved&amp;sort=name&amp;dir=asc"' in oldest


def test_unreadable_parameters_fall_back_to_the_defaults(back_office):
    """A sort, direction, status or page the list does not know shows the default list rather than an error."""
    reply = page(back_office, "/portal/backoffice/merchants?sort=id;drop&dir=sideways&status=gone&page=-3")
    assert reply.status_code == 200 and len(names(reply.get_data(as_text=True))) == 5
    assert page(back_office, "/portal/backoffice/merchants?page=x").status_code == 200


def test_pages_keep_the_search_and_order(back_office, monkeypatch):
    """The list is paged; the next and previous links keep the search, filter and sort; a page past the end is
    empty, not an error."""
    monkeypatch.setattr(queries, "MERCHANTS_PER_PAGE", 2)
    first = page(back_office, "/portal/backoffice/merchants?sort=name&dir=asc").get_data(as_text=True)
    assert names(first) == ["Anshan Tea", "Bo&#39;s Noodles"] and 'rel="prev"' not in first
    second = page(back_office, links(first, "next")).get_data(as_text=True)
    assert "sort=name" in links(first, "next") and names(second) == ["Cafe Lu", "Dalian Fish"]
    third = page(back_office, links(second, "next")).get_data(as_text=True)
    assert names(third) == ["Erdao Bakery"] and 'rel="next"' not in third
    assert names(page(back_office, links(third, "prev")).get_data(as_text=True)) == ["Cafe Lu", "Dalian Fish"]
    assert names(page(back_office, "/portal/backoffice/merchants?page=9").get_data(as_text=True)) == []


def test_a_page_reads_a_bounded_number_of_rows(app, create_merchant):
    """list_merchants asks the database for one page and one row more (LIMIT ... OFFSET), never the whole table,
    and says whether a next page follows."""
    for n in range(7):
        create_merchant(f"Shop {n}")
    statements = []

    def keep(conn, cursor, statement, parameters, context, executemany) -> None:
        """Keep each statement sent."""
        statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        rows, more = queries.list_merchants(queries.MerchantSearch(page=2), per_page=3)
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)
    assert [m.name for m, _owner in rows] == ["Shop 3", "Shop 2", "Shop 1"] and more
    [(sql, parameters)] = [(sql, p) for sql, p in statements if "FROM merchants" in sql]
    assert "LIMIT" in sql and "OFFSET" in sql and 4 in parameters.values() and 3 in parameters.values()
    rows, more = queries.list_merchants(queries.MerchantSearch(page=3), per_page=3)
    assert [m.name for m, _owner in rows] == ["Shop 0"] and not more
