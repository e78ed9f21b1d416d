"""Build the OpenAPI 3.1 document from the declared routes and their pydantic models."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from broker.api.routing import ApiRoute

_ERROR_TEXT = {
    400: "Malformed request (bad JSON, JSON nested too deep, an over-long integer, a body that "
    "does not match its Content-Encoding, wrong content type)",
    401: "Missing, invalid or expired token",
    403: "Role or consent does not allow this",
    404: "No such resource",
    409: "Conflicts with the current state",
    408: "Request body not received within the server's body timeout",
    410: "Session code used, expired or unknown",
    413: "Body too large (refused from Content-Length before it is sent, when declared)",
    422: "Fields missing, unknown or of the wrong type",
    429: "Rate limited; see Retry-After",
    503: "Overloaded (too many password checks waiting); see Retry-After",
}

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "stable machine-readable code"},
        "message": {"type": "string"},
        "details": {"type": "object"},
    },
}


def _schema_ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _query_schema(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema: an optional one is absent, never ``null``."""
    options = prop.get("anyOf")
    if isinstance(options, list):
        present = [option for option in options if option.get("type") != "null"]
        if len(present) == 1:
            rest = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
            return {**present[0], **rest}
    return prop


def build_openapi(
    routes: Sequence[ApiRoute], *, version: str, plans: Sequence[str] = ()
) -> dict[str, Any]:
    """Build the document.

    Args:
        routes: The declared API routes.
        version: The broker's version.
        plans: The configured support plans: every body field named ``plan`` lists them.
    """
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        op: dict[str, Any] = {
            "summary": route.summary,
            "operationId": route.handler.__name__,
            "tags": list(route.tags),
        }
        if route.auth == "staff":
            op["security"] = [{"staffBearer": []}]
        elif route.auth == "customer":
            op["security"] = [{"sessionBearer": []}]
        else:
            op["security"] = []
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", route.path)
        ]
        if route.query is not None:
            qschema = route.query.model_json_schema()
            required = set(qschema.get("required", []))
            for name, prop in qschema.get("properties", {}).items():
                params.append(
                    {
                        "name": name,
                        "in": "query",
                        "required": name in required,
                        "schema": _query_schema(prop),
                    }
                )
        if params:
            op["parameters"] = params
        if route.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema_ref(route.body, components)}},
            }
        ok: dict[str, Any] = {"description": "Success"}
        if route.response is not None:
            ok["content"] = {
                "application/json": {"schema": _schema_ref(route.response, components)}
            }
        responses: dict[str, Any] = {str(route.status): ok}
        body_errors = {400, 408, 413, 422}
        for status in sorted({*route.errors, *body_errors} if route.body else set(route.errors)):
            responses[str(status)] = {
                "description": _ERROR_TEXT.get(status, "Error"),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        op["responses"] = responses
        paths.setdefault(route.path, {})[route.method.lower()] = op
    if plans:
        for schema in components.values():
            plan = schema.get("properties", {}).get("plan")
            if plan is not None and plan.get("type") == "string":
                plan["enum"] = list(plans)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Remote-support session broker API",
            "version": version,
            "description": "Cases, sessions, join codes, staff auth and audit. "
            "Tokens travel in the Authorization header, never in URLs.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "staffBearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "sessionBearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }
