"""Path ids go through one converter: an id that cannot exist is a 404 on every route, HTML and JSON, never a 500."""

from __future__ import annotations

import re

import pytest
from werkzeug.routing import IntegerConverter

from metropoints.core.urls import IdConverter

IMPOSSIBLE = ("0", "2147483648", "9223372036854775808", "99999999999999999999999")


def id_rules(app):
    """Every URL rule with an `id` segment."""
    return [rule for rule in app.url_map.iter_rules()
            if any(isinstance(conv, IdConverter) for conv in rule._converters.values())]


def test_every_integer_segment_is_an_id(app):
    """No route takes a plain `int` segment: every numeric path id uses the one `id` converter."""
    plain = [rule.rule for rule in app.url_map.iter_rules()
             if any(type(conv) is IntegerConverter for conv in rule._converters.values())]
    assert plain == []
    assert len(id_rules(app)) >= 20  # campaigns, stores, staff, merchants, reviews, coupons, statements, kiosk QR


def _url(rule, value: str) -> str:
    """The rule's path with every id segment set to `value` and any other segment filled plausibly."""
    def fill(match: re.Match) -> str:
        converter, name = match.group(1), match.group(2)
        if converter == "id":
            return value
        if converter and converter.startswith("any("):
            return converter[4:].split(",")[0].strip()
        return "0101" if "station" in name else "x"
    return re.sub(r"<(?:([^:<>]+):)?([^<>]+)>", fill, rule.rule)


@pytest.mark.parametrize("value", IMPOSSIBLE)
def test_an_impossible_id_is_a_404_everywhere(app, client, create_shop, value):
    """Logged in as a merchant's owner, every id route with an id that cannot exist gives 404 (JSON under /api/),
    for each of its methods: the rule does not match, so no login check, loader or query runs."""
    shop = create_shop()
    client.post("/login", data={"email": shop.owner.email, "password": "password123"})
    for rule in id_rules(app):
        url = _url(rule, value)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method)
            assert response.status_code == 404, (method, url, response.status_code)
            if url.startswith("/api/"):
                assert response.get_json()["error"]["code"] == "not_found"


def test_the_largest_id_reaches_the_view(app):
    """The converter admits every id the INTEGER column can hold, and no more."""
    adapter = app.url_map.bind("localhost")
    rule = id_rules(app)[0]
    _, args = adapter.match(_url(rule, "2147483647"), method=sorted(rule.methods - {"HEAD", "OPTIONS"})[0])
    assert 2147483647 in args.values()
