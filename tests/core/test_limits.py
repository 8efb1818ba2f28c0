"""The rate limiter runs for the views that have limits (the three logins and the request for a password reset
link, which sends mail) and is skipped for every other."""

from __future__ import annotations

from metropoints.core.extensions import _view_without_limits


def test_only_the_login_views_go_through_the_limiter(app):
    limited = set()
    for rule in app.url_map.iter_rules():
        with app.test_request_context(rule.rule.replace("<", "").replace(">", "")):
            from flask import request

            request.url_rule, request.view_args = rule, {}
            if not _view_without_limits():
                limited.add(rule.endpoint)
    assert limited == {"core.login", "riders_api.token", "riders_api.staff_token", "account.forgot_password"}
