"""Small typed readers for the bodies of the gateway's own endpoints (the chat
formats validate through their models in `tierwise.wire`); each failure names
the parameter."""

from __future__ import annotations

from typing import Any

from tierwise.errors import RequestError

JSONObject = dict[str, Any]


def require_object(value: Any, param: str) -> JSONObject:
    if not isinstance(value, dict):
        raise RequestError(f"'{param}' must be an object", param=param)
    return value


def opt_str(body: JSONObject, key: str) -> str | None:
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    raise RequestError(f"'{key}' must be a string", param=key)


def req_str(body: JSONObject, key: str) -> str:
    value = opt_str(body, key)
    if not value:
        raise RequestError(f"'{key}' is required and must be a non-empty string", param=key)
    return value
