"""Small typed readers for request bodies; each failure names the parameter."""

from __future__ import annotations

from typing import Any

from tierwise.errors import RequestError

JSONObject = dict[str, Any]
INT64_MAX = 2**63 - 1


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


def opt_int(body: JSONObject, key: str, low: int, high: int = INT64_MAX) -> int | None:
    """JSON draws no line between 2 and 2.0: integral numbers are integers.
    Integers stay within 64 bits, as upstream APIs and stores need."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"'{key}' must be an integer", param=key)
    if not low <= value <= high:
        raise RequestError(f"'{key}' must be between {low} and {high}, got {value}", param=key)
    return value


def opt_number(body: JSONObject, key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(f"'{key}' must be a number", param=key)
    if not low <= value <= high:
        raise RequestError(f"'{key}' must be between {low} and {high}, got {value}", param=key)
    return float(value)


def opt_bool(body: JSONObject, key: str) -> bool | None:
    value = body.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise RequestError(f"'{key}' must be a boolean", param=key)


def opt_list(body: JSONObject, key: str) -> list[Any] | None:
    value = body.get(key)
    if value is None or isinstance(value, list):
        return value
    raise RequestError(f"'{key}' must be an array", param=key)


def opt_stop(body: JSONObject, key: str) -> list[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise RequestError(f"'{key}' must be a string or an array of strings", param=key)


def opt_str_map(body: JSONObject, key: str) -> dict[str, str]:
    value = body.get(key)
    if value is None:
        return {}
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return {str(k): v for k, v in value.items()}
    raise RequestError(f"'{key}' must be an object of strings", param=key)


def opt_tool_choice(body: JSONObject, key: str) -> str | JSONObject | None:
    value = body.get(key)
    if value is None or isinstance(value, str | dict):
        return value
    raise RequestError(f"'{key}' must be a string or an object", param=key)
