"""The OpenAPI 3.1 document, generated from the action declarations and the API's own routes."""

from __future__ import annotations

import re
from typing import Any

from controlplane import __version__
from controlplane.core.actions import Action

ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "unreadable JSON", 401: "token missing or wrong", 403: "forbidden",
            404: "not found", 409: "a run with the same lock is in progress",
            413: "body too large", 422: "invalid input, every bad field named",
            428: "confirmation required"}
    return {str(code): _json(ERROR, text[code]) for code in codes}


def _action_operation(action: Action, components: dict[str, Any]) -> dict[str, Any]:
    schema = action.params.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    name = action.params.__name__
    body = dict(schema)
    body.setdefault("properties", {})
    if action.destructive:
        body["properties"] = {**body["properties"],
                              "confirm": {"type": "boolean", "const": True,
                                          "description": "required: this action is destructive"}}
    body["properties"] = {k: v for k, v in body["properties"].items()
                          if k not in action.url_params}
    body["required"] = [r for r in body.get("required", []) if r not in action.url_params]
    components[name + "Body"] = body
    codes = [400, 401, 403, 409, 413, 422] + ([428] if action.destructive else [])
    return {
        "operationId": re.sub(r"[^A-Za-z0-9]+", "_", action.path.strip("/")),
        "summary": action.title,
        "tags": [action.integration],
        "parameters": [{"name": n, "in": "path", "required": True,
                        "schema": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]*$"}}
                       for n in action.url_params],
        "requestBody": {"required": False, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{name}Body"}}}},
        "responses": {
            "200": _json({"$ref": "#/components/schemas/RunAnswer"}, "the run ended"),
            "202": _json({"$ref": "#/components/schemas/RunAnswer"},
                         "started (Prefer: respond-async)"),
            **_errors(*codes),
        },
        "x-run-subtype": action.subtype,
        "x-destructive": action.destructive,
    }


def _get(summary: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": params or [],
                    "responses": {"200": {"description": "ok"}, **_errors(401, 403, 404, 422)}}}


def _post(summary: str) -> dict[str, Any]:
    return {"post": {"summary": summary,
                     "responses": {"200": {"description": "ok"},
                                   **_errors(400, 401, 403, 404, 409, 422)}}}


def _query(name: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind}}


RUN_ID = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}


# What the URL map cannot say about the hand-written routes: their query parameters.
QUERY_PARAMS: dict[str, list[dict[str, Any]]] = {
    "/api/runs/recent": [_query("limit", "integer"), _query("type"), _query("status"),
                         _query("before")],
    "/api/runs/search": [_query("q"), _query("limit", "integer")],
    "/api/runs/{run_id}/events": [_query("after", "integer")],
    "/api/metrics/summary": [_query("minutes", "integer")],
    "/api/metrics/durations": [_query("minutes", "integer")],
    "/api/chat": [_query("limit", "integer"), _query("before")],
    "/api/events": [_query("last_event_id")],
    "/api/ws": [_query("last_event_id")],
    "/login": [_query("token"), _query("next")],
}
OPEN_ROUTES = {"/healthz", "/login", "/static/{filename}"}
RULE_PARAM = re.compile(r"<(?:[^:<>]+:)?(\w+)>")


def openapi_path(rule: str) -> str:
    """A werkzeug rule (``/api/runs/<run_id>``) as an OpenAPI path (``/api/runs/{run_id}``)."""
    return RULE_PARAM.sub(r"{\1}", rule)


def _route_operation(path: str, method: str, view: Any) -> dict[str, Any]:
    doc = (getattr(view, "__doc__", None) or "").strip().splitlines()
    params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
              for n in re.findall(r"{(\w+)}", path)]
    params += QUERY_PARAMS.get(path, []) if method == "get" else []
    codes = (401, 403, 404, 422) if method == "get" else (400, 401, 403, 404, 409, 422)
    page = not (path.startswith("/api/") or path == "/healthz")
    operation: dict[str, Any] = {
        "summary": doc[0] if doc else path, "parameters": params,
        "tags": ["dashboard" if page else "api"],
        "responses": {"200": {"description": "ok"}, **_errors(*codes)}}
    if path in OPEN_ROUTES:
        operation["security"] = []
    return operation


def openapi_document(actions: dict[str, Action], url_map: Any = None,
                     view_functions: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole document: every action route plus every other rule the app serves.

    With *url_map* (``app.url_map``) the paths are exactly the served rules; the
    action routes get their schemas from the declarations.
    """
    components: dict[str, Any] = {
        "Error": {"type": "object", "required": ["error"], "properties": {
            "error": {"type": "string"}, "message": {"type": "string"},
            "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            "run_id": {"type": "string"}}},
        "RunAnswer": {"type": "object", "required": ["run_id", "status"], "properties": {
            "run_id": {"type": "string"}, "status": {"type": "string"}},
            "additionalProperties": True},
    }
    paths: dict[str, Any] = {}
    for action in actions.values():
        paths[openapi_path(action.path)] = {"post": _action_operation(action, components)}
    if url_map is None:
        return _document(components, paths)
    for rule in url_map.iter_rules():
        path = openapi_path(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operations = paths.setdefault(path, {})
            if method.lower() not in operations:
                view = (view_functions or {}).get(rule.endpoint)
                operations[method.lower()] = _route_operation(path, method.lower(), view)
    return _document(components, paths)


def _document(components: dict[str, Any], paths: dict[str, Any]) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Solution Control Plane", "version": __version__},
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }
