"""The counter code in the API document: the redemption reply and the coupon list declare it (12 digits, the last
a check digit), and the counter's validation documents its 429 too_many_attempts."""

from __future__ import annotations

import re


def test_counter_code_is_declared(client):
    """RedemptionReply and CouponItem require `counter_code`, a string of 12 digits; POST /counter/validate lists a
    429 reply whose code is too_many_attempts."""
    document = client.get("/api/v1/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    for name in ("RedemptionReply", "CouponItem"):
        prop = schemas[name]["properties"]["counter_code"]
        assert prop["type"] == "string" and re.fullmatch(prop["pattern"], "123456789012"), (name, prop)
        assert not re.fullmatch(prop["pattern"], "1234-5678-9012")
        assert "counter_code" in schemas[name]["required"], name
    replies = document["paths"]["/counter/validate"]["post"]["responses"]
    assert "429" in replies and "too_many_attempts" in str(replies["429"]), replies.get("429")
