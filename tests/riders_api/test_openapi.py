"""The OpenAPI document: served as JSON, OpenAPI 3.1, and describing exactly the routes the app serves."""

from __future__ import annotations

import json
import re

from metropoints.riders_api.spec import DOCUMENTED_PATHS, openapi_document

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def served_operations(app) -> set[str]:
    """Every "METHOD /path" the app routes under /api/v1, with Flask's <int:x> and <x> written {x}."""
    operations = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        operations |= {f"{method} {path}" for method in rule.methods - IGNORED_METHODS}
    return operations


def refs(node) -> list[str]:
    """Every $ref anywhere in a JSON tree."""
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def test_served_as_openapi_31_json(client):
    """GET /api/v1/openapi.json needs no token and answers a JSON OpenAPI 3.1.x document."""
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = json.loads(response.get_data(as_text=True))
    assert re.fullmatch(r"3\.1\.\d+", document["openapi"])
    assert document["info"]["title"] and document["info"]["version"]
    assert document["servers"] == [{"url": "/api/v1"}]
    assert document == openapi_document()


def test_documented_paths_match_the_url_map(app):
    """DOCUMENTED_PATHS is exactly the set of operations the app serves under /api/v1."""
    assert served_operations(app) == set(DOCUMENTED_PATHS)


def test_served_document_lists_the_same_operations(app, client):
    """The document's paths, prefixed with its server url, are the operations the app serves."""
    document = client.get("/api/v1/openapi.json").get_json()
    prefix = document["servers"][0]["url"]
    listed = {f"{method.upper()} {prefix}{path}" for path, item in document["paths"].items() for method in item}
    assert listed == served_operations(app)


def test_every_ref_resolves(client):
    """Every $ref points at a component the document defines."""
    document = client.get("/api/v1/openapi.json").get_json()
    found = refs(document)
    assert found
    for ref in found:
        node = document
        assert ref.startswith("#/")
        for part in ref[2:].split("/"):
            assert part in node, ref
            node = node[part]


def test_operations_say_their_token_kind_and_errors(client):
    """Each operation names its token kind; those needing one document 401 and 403, and every 4xx has the
    Error schema."""
    document = client.get("/api/v1/openapi.json").get_json()
    kinds = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            kinds[f"{method.upper()} {path}"] = operation["x-token-kind"]
            if operation["x-token-kind"] is not None:
                assert {"401", "403"} <= set(operation["responses"])
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    schema = response["content"]["application/json"]["schema"]
                    assert {"$ref": "#/components/schemas/Error"} in schema["allOf"]
    assert kinds["POST /trips"] == "partner" and kinds["GET /me"] == "rider"
    assert kinds["POST /auth/register"] is None and kinds["POST /auth/token"] is None


def test_each_caller_gets_its_own_copy(client):
    """Changing one served document does not change the next one."""
    document = openapi_document()
    document["paths"].clear()
    assert openapi_document()["paths"]
    assert client.get("/api/v1/openapi.json").get_json()["paths"]
