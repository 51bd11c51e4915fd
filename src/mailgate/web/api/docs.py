"""`/api/v1/docs`: the API's documentation, served by mailgate itself — no CDN, no script: a
page rendered on the server from the API's own OpenAPI description, so it can't drift from it.
Grouped by tag; each operation with its method, path, summary, parameters, request body fields
and responses; and how to authenticate."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup, escape

from mailgate.context import Context
from mailgate.web.shell import TEMPLATES, render

METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Field:
    name: str
    where: str  # path, query, header, or body
    type: str
    required: bool
    description: str


@dataclass(frozen=True)
class Answer:
    status: str
    description: str
    type: str
    media: str


@dataclass
class Operation:
    method: str
    path: str
    summary: str
    description: str
    anchor: str
    parameters: list[Field] = field(default_factory=list)
    body: list[Field] = field(default_factory=list)
    body_type: str = ""
    answers: list[Answer] = field(default_factory=list)


@dataclass
class Section:
    tag: str
    operations: list[Operation] = field(default_factory=list)


def prose(text: str | None) -> Markup:
    """A description as HTML: escaped, its `code` spans as code, its paragraphs kept."""
    html = Markup()
    for paragraph in (text or "").split("\n\n"):
        if paragraph.strip():
            pieces = paragraph.strip().split("`")
            inner = Markup().join(
                Markup("<code>{}</code>").format(piece) if odd % 2 else escape(piece)
                for odd, piece in enumerate(pieces)
            )
            html += Markup("<p>{}</p>").format(inner)
    return html


def _name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def type_of(schema: dict[str, Any]) -> str:
    """A schema in a few words: `string`, `integer ≤ 200`, `list of Project`, `a | b`."""
    if "$ref" in schema:
        return _name(schema["$ref"])
    for combined in ("anyOf", "oneOf", "allOf"):
        if combined in schema:
            return " or ".join(type_of(part) for part in schema[combined])
    if "enum" in schema:
        return " | ".join(str(value) for value in schema["enum"])
    if "const" in schema:
        return str(schema["const"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {type_of(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        return f"object of {type_of(extra)}" if isinstance(extra, dict) else "object"
    limits = [
        f"{word} {schema[key]}"
        for key, word in (
            ("minimum", "≥"),
            ("maximum", "≤"),
            ("maxLength", "at most"),
            ("format", "as"),
        )
        if key in schema
    ]
    return " ".join([str(kind), *limits])


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][_name(schema["$ref"])]
    return schema


def _fields(spec: dict[str, Any], schema: dict[str, Any]) -> list[Field]:
    """The properties of an object schema (a body), each with its type and whether required."""
    for part in schema.get("anyOf", []):  # an optional body: the object, or null
        if part.get("type") != "null":
            schema = part
    schema = _resolve(spec, schema)
    required = set(schema.get("required", []))
    return [
        Field(name, "body", type_of(prop), name in required, prop.get("description", ""))
        for name, prop in schema.get("properties", {}).items()
    ]


def _operation(spec: dict[str, Any], method: str, path: str, op: dict[str, Any]) -> Operation:
    operation = Operation(
        method=method.upper(),
        path=path,
        summary=op.get("summary", ""),
        description=op.get("description", ""),
        anchor=op.get("operationId", f"{method}-{path}"),
    )
    for param in op.get("parameters", []):
        schema = param.get("schema", {})
        operation.parameters.append(
            Field(
                param["name"],
                param["in"],
                type_of(schema),
                bool(param.get("required")),
                param.get("description") or schema.get("description", ""),
            )
        )
    content = op.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        schema = content["application/json"].get("schema", {})
        operation.body = _fields(spec, schema)
        operation.body_type = type_of(schema)
    for status, answer in sorted(op.get("responses", {}).items()):
        bodies = answer.get("content") or {"": {}}
        # The media type that has a schema (a problem's model is described under JSON).
        media = next((m for m in bodies if m.endswith("problem+json")), next(iter(bodies)))
        schema = next((b["schema"] for b in bodies.values() if b.get("schema")), {})
        said = Answer(status, answer.get("description", ""), type_of(schema), media)
        same = operation.answers[-1] if operation.answers else None
        if same is not None and (same.type, same.media) == (said.type, said.media) != ("", ""):
            # The errors every route may answer, on one line: 400, 401, 403 … Problem.
            said = Answer(
                f"{same.status}, {status}",
                f"{same.description}; {said.description}",
                said.type,
                media,
            )
            operation.answers[-1] = said
        else:
            operation.answers.append(said)
    return operation


def sections(spec: dict[str, Any]) -> list[Section]:
    """The operations of an OpenAPI description, grouped by their first tag, in path order."""
    by_tag: dict[str, Section] = {}
    for path, item in spec.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                op = item[method]
                tag = (op.get("tags") or ["other"])[0]
                section = by_tag.setdefault(tag, Section(tag))
                section.operations.append(_operation(spec, method, path, op))
    return list(by_tag.values())


def router(ctx: Context) -> APIRouter:
    routes = APIRouter()

    @routes.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        spec = request.app.openapi()
        values = {
            "title": "API",
            "spec": spec,
            "sections": sections(spec),
            "schemas": spec.get("components", {}).get("schemas", {}),
            "prose": prose,
            "type_of": type_of,
            "base": spec.get("servers", [{}])[0].get("url", ""),
        }
        if getattr(request.state, "web_session", None) is not None:
            return await render(request, ctx, "api_docs.html", {**values, "layout": "base.html"})
        return TEMPLATES.TemplateResponse(
            request, "api_docs.html", {**values, "layout": "api_docs_page.html"}
        )

    return routes
