"""Action forms from parameter schemas: the fields Jinja renders, and a form post read back.

One place decides what an action's form looks like (:func:`fields_of`, rendered by
``templates/controlplane/_form.html``); the page's JS only enhances that markup. A form
post (``application/x-www-form-urlencoded``, JavaScript off) is turned back into the
JSON body the action validates by :func:`body_from_form`: lists and objects are JSON
textareas (a list also takes one item per line), empty fields are left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controlplane.core.actions import Action

FORM_ONLY_FIELDS = frozenset({"csrf_token", "confirm"})


@dataclass
class FormField:
    """One control of an action's form."""

    name: str
    id: str  # the control's element id, unique on the page
    kind: str  # string, secret, integer, number, boolean, enum, array, object, const
    schema: dict[str, Any]
    required: bool
    in_url: bool
    label: str
    hint: str
    default: Any = None
    nullable: bool = False
    choices: list[Any] = field(default_factory=list)

    @property
    def initial(self) -> str:
        """The control's text before anyone types (the default, shown as it would be sent)."""
        value = self.default
        if value is None or self.kind in ("secret", "boolean"):
            return ""
        if self.kind in ("array", "object"):
            return json.dumps(value)
        return str(value)


def _deref(schema: Mapping[str, Any] | None, defs: Mapping[str, Any]) -> dict[str, Any]:
    schema = dict(schema or {})
    if "$ref" in schema:
        target = _deref(defs.get(str(schema.pop("$ref")).rsplit("/", 1)[-1], {}), defs)
        return {**target, **schema}
    if isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
        inner = _deref(schema.pop("allOf")[0], defs)
        return {**inner, **schema}
    return schema


def normalize(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> tuple[dict[str, Any], bool, str]:
    """(schema, nullable, kind) of one property: $ref/allOf resolved, "X or null" nullable."""
    schema = _deref(prop, defs)
    nullable = False
    variants = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(variants, list):
        real = [v for v in variants if v.get("type") != "null"]
        nullable = len(real) < len(variants)
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        schema = {**_deref(real[0], defs), **rest} if len(real) == 1 else {**rest, "type": "string"}
    if isinstance(schema.get("type"), list):
        types = schema["type"]
        nullable = nullable or "null" in types
        schema = {**schema, "type": next((t for t in types if t != "null"), "string")}
    kind = str(schema.get("type") or "string")
    if isinstance(schema.get("enum"), list):
        kind = "enum"
    elif "const" in schema:
        kind = "const"
    elif kind == "string" and (schema.get("format") == "password" or schema.get("writeOnly")):
        kind = "secret"
    if kind == "array":
        schema = {**schema, "items": _deref(schema.get("items"), defs)}
    return schema, nullable, kind


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or "action"


def form_id(action: Action) -> str:
    """The prefix of every element id of *action*'s card (``f-testing-run``)."""
    return f"f-{slug(action.path)}"


def humanize(name: str) -> str:
    words = re.sub(r"[_-]+", " ", name).strip()
    return words[:1].upper() + words[1:]


def _bounds(schema: Mapping[str, Any]) -> str:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if low is not None and high is not None:
        return f"From {low} to {high}."
    if low is not None:
        return f"At least {low}."
    return f"At most {high}." if high is not None else ""


def _hint(schema: Mapping[str, Any], kind: str, in_url: bool) -> str:
    description = str(schema.get("description") or "").strip()
    if description and description[-1] not in ".!?:":
        description += "."
    extra = {"array": 'A JSON list, e.g. ["a", "b"] (or one item per line).',
             "object": "A JSON object."}.get(kind, "")
    hint = " ".join(part for part in (description, _bounds(schema), extra) if part)
    return hint or ("Part of the action's address." if in_url else "")


def fields_of(action: Action) -> list[FormField]:
    """The form's fields: required ones first, checkboxes last, declaration order within."""
    schema = action.params.model_json_schema()
    defs = schema.get("$defs") or schema.get("definitions") or {}
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    url_params = action.url_params
    names = [*url_params, *(n for n in properties if n not in url_params)]
    base = form_id(action)
    fields = []
    for name in names:
        prop, nullable, kind = normalize(properties.get(name, {"type": "string"}), defs)
        in_url = name in url_params
        title = prop.get("title")
        made_up = " ".join(w[:1].upper() + w[1:] for w in name.split("_"))
        fields.append(FormField(
            name=name, id=f"{base}-{slug(name)}", kind=kind, schema=prop,
            required=in_url or name in required,
            in_url=in_url, label=title if title and title != made_up else humanize(name),
            hint=_hint(prop, kind, in_url), default=prop.get("default"),
            nullable=nullable, choices=list(prop.get("enum") or [])))

    def group(f: FormField) -> int:
        return 0 if f.required else (2 if f.kind == "boolean" else 1)

    return sorted(fields, key=group)  # sorted() is stable: declaration order within a group


def _list_value(raw: str) -> Any:
    if raw.lstrip().startswith("["):
        return json.loads(raw)
    return [line.strip() for line in raw.splitlines() if line.strip()]


def _one_value(f: FormField, raw: str) -> Any:
    """The typed value of one posted field (ValueError with a message for people)."""
    if f.kind in ("integer", "number"):
        try:
            return int(raw) if f.kind == "integer" else float(raw)
        except ValueError:
            raise ValueError("Enter a number.") from None
    if f.kind == "enum":
        for choice in f.choices:
            if raw == str(choice):
                return choice
        raise ValueError("Choose one of the listed values.")
    if f.kind in ("array", "object"):
        try:
            value = _list_value(raw) if f.kind == "array" else json.loads(raw)
        except ValueError:
            raise ValueError("Enter valid JSON.") from None
        items = f.schema.get("items", {}).get("type")
        if f.kind == "array" and items in ("integer", "number") and isinstance(value, list):
            try:
                value = [float(v) if items == "number" else int(v) for v in value]
            except (TypeError, ValueError):
                raise ValueError("Enter numbers.") from None
        return value
    return raw


def body_from_form(action: Action,
                   form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(JSON body, errors by field) from a posted form; URL parameters are not in the body."""
    body: dict[str, Any] = {}
    errors: dict[str, str] = {}
    known = set()
    for f in fields_of(action):
        known.add(f.name)
        if f.in_url:
            continue
        if f.kind == "boolean":
            body[f.name] = form.get(f.name) in ("on", "true", "1", "yes")
            continue
        raw = form.get(f.name, "")
        if raw == "" or (raw.strip() == "" and f.kind != "string"):
            continue
        try:
            body[f.name] = _one_value(f, raw)
        except ValueError as exc:
            errors[f.name] = str(exc)
    for name in form:
        if name not in known and name not in FORM_ONLY_FIELDS:
            body[name] = form[name]  # unknown: the model refuses it by name if it forbids extras
    return body, errors
