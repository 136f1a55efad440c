"""The OpenAPI document is generated from what the app serves: nothing served is missing."""

from __future__ import annotations

from controlplane.ui.web.openapi import openapi_path


def test_every_served_rule_and_method_is_documented(app, client) -> None:
    document = client.get("/api/openapi.json").json
    missing = []
    for rule in app.url_map.iter_rules():
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            if method.lower() not in document["paths"].get(openapi_path(rule.rule), {}):
                missing.append(f"{method} {rule.rule}")
    assert not missing, missing
    assert not set(document["paths"]) - {openapi_path(r.rule) for r in app.url_map.iter_rules()}


def test_hand_written_routes_carry_their_parameters(client) -> None:
    paths = client.get("/api/openapi.json").json["paths"]
    recent = {p["name"] for p in paths["/api/runs/recent"]["get"]["parameters"]}
    assert recent == {"limit", "type", "status", "before"}
    assert paths["/healthz"]["get"]["security"] == []
    assert paths["/api/chat"]["post"]["summary"]  # the view's docstring
    assert "/ws/events" in paths and "/api/runs/ingest" in paths
