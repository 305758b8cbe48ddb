"""The OpenAPI 3.1 description of the gateway's HTTP API, served at `GET /openapi.json`.

The chat requests' and answers' schemas are generated from the models in
`tierwise.wire`, the same models that validate requests and type the encoders; this
module adds what they cannot say: paths, auth, headers, stream events and errors.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tierwise import __version__
from tierwise.wire.anthropic.models import AnthropicMessage, AnthropicMessagesRequest
from tierwise.wire.openai.completions import OpenAICompletion, OpenAICompletionRequest
from tierwise.wire.openai.embeddings import OpenAIEmbeddingList, OpenAIEmbeddingRequest
from tierwise.wire.openai.models import OpenAIChatCompletion, OpenAIChatRequest
from tierwise.wire.openai.responses import OpenAIResponse, OpenAIResponsesRequest
from tierwise.wire.schema import component_schemas

JSON = dict[str, Any]
STR: JSON = {"type": "string"}
INT: JSON = {"type": "integer"}
BOOL: JSON = {"type": "boolean"}
USAGE = ("prompt_tokens", "completion_tokens", "total_tokens")
RECORD_HEADERS: dict[str, tuple[str, JSON]] = {
    "x-tierwise-route": ("The route, tier or deployment the request named.", {}),
    "x-tierwise-model": ("The deployment that answered.", {}),
    "x-tierwise-tier": ("The tier of that deployment.", {}),
    "x-tierwise-attempts": ("Calls made, failed ones included.", {"pattern": "^[0-9]+$"}),
    "x-tierwise-cost-usd": (
        "Attempts, checks and router tax in USD (not sent on streams).",
        {"pattern": "^[0-9]+(\\.[0-9]+)?$"},
    ),
    "x-tierwise-status": (
        "`ok` or `degraded`; `error` on failures.",
        {"enum": ["ok", "degraded", "error", "cancelled"]},
    ),
}
ERRORS = {
    400: "The body is not JSON or a field is invalid (`param` names it); or every "
    "deployment refused the request as bad or too long.",
    401: "Missing or unknown API key.",
    403: "The key may not use this model or view the dashboard.",
    404: "Unknown model, route, request id or stored response.",
    409: "The request store is off (`store.enabled: false`).",
    413: "The body is larger than `server.max_body_bytes`.",
    429: "Every attempt was rate limited or met an open circuit.",
    502: "Every attempt failed upstream; `attempts` lists them.",
    503: "The request store is unreachable for now (answers are still served).",
}
SECURED: list[JSON] = [{"bearer": []}, {"apiKey": []}]
OPEN: list[JSON] = []
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    "session": {"type": "apiKey", "in": "cookie", "name": "tierwise_dashboard"},
}


def ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(*required: str, **properties: JSON) -> JSON:
    out: JSON = {"type": "object", "properties": properties}
    if required:
        out["required"] = list(required)
    return out


def strict(**properties: JSON) -> JSON:
    """An object that always has all of `properties`."""
    return obj(*properties, **properties)


def arr(items: JSON, **rest: Any) -> JSON:
    return {"type": "array", "items": items, **rest}


def maybe(*kinds: str, **rest: Any) -> JSON:
    """Optional field: the decoders treat JSON null as absent."""
    return {"type": [*kinds, "null"], **rest}


def feedback_request() -> JSON:
    thumbs = "^([Uu][Pp]|[Dd][Oo][Ww][Nn]|[Tt][Hh][Uu][Mm][Bb][Ss]_([Uu][Pp]|[Dd][Oo][Ww][Nn]))$"
    score = {
        "anyOf": [BOOL, {**STR, "pattern": thumbs}, {"type": "number", "minimum": 1, "maximum": 5}],
        "description": '"up", "down", "thumbs_up", "thumbs_down" (any case), true, false or 1-5.',
    }
    comment = maybe("string", description="Kept up to 2000 characters.")
    rid = {**STR, "minLength": 1}
    return obj("request_id", "score", request_id=rid, score=score, comment=comment)


def stream_events() -> dict[str, JSON]:
    """Server-sent events, as OpenAPI 3.1 describes each one: `event` and `data`."""
    delta = obj(role=STR, content=STR, tool_calls=arr(obj("index", index=INT)))
    choice = obj("index", "delta", index=INT, delta=delta, finish_reason=maybe("string"))
    chunk = strict(
        object={"const": "chat.completion.chunk"}, id=STR, model=STR, choices=arr(choice)
    )
    chunk["properties"]["usage"] = obj(*USAGE, **dict.fromkeys(USAGE, INT))
    chunks = {"anyOf": [chunk, ref("OpenAIError")]}
    openai_data = {"contentMediaType": "application/json", "contentSchema": chunks}
    events = ["message_start", "ping", "content_block_start", "content_block_delta"]
    events += ["content_block_stop", "message_delta", "message_stop", "error"]
    anthropic_data = {
        "contentMediaType": "application/json",
        "contentSchema": obj("type", type=STR),
    }
    return {
        "OpenAIStreamEvent": obj("data", data={"anyOf": [{"const": "[DONE]"}, openai_data]}),
        "AnthropicStreamEvent": strict(event={"enum": events}, data=anthropic_data),
    }


def model_lists() -> dict[str, JSON]:
    model = {"const": "model"}
    openai = strict(id=STR, object=model, created=INT, owned_by=STR)
    anthropic = strict(type=model, id=STR, display_name=STR, created_at=STR)
    ends = {"first_id": maybe("string"), "last_id": maybe("string")}
    return {
        "OpenAIModelList": strict(object={"const": "list"}, data=arr(openai)),
        "AnthropicModelList": strict(data=arr(anthropic), has_more=BOOL, **ends),
    }


def error_schemas() -> dict[str, JSON]:
    text, integer = maybe("string"), maybe("integer")
    attempt = strict(deployment=STR, tier=STR, called=BOOL, outcome=STR, detail=STR)
    attempt["required"] += ["reason", "status"]
    attempt["properties"] |= {"reason": text, "status": integer}
    attempts = arr(attempt, description="Present when every attempt failed.")
    openai = strict(message=STR, type=STR, param=text, code=text)
    anthropic = strict(type=STR, message=STR)
    for error in (openai, anthropic):
        error["properties"]["attempts"] = attempts
    return {
        "OpenAIError": strict(error=openai),
        "AnthropicError": strict(type={"const": "error"}, error=anthropic),
    }


def small_schemas() -> dict[str, JSON]:
    lists = {k: {"type": "array"} for k in ("groups", "tiers", "triggers", "buckets", "failures")}
    seconds, positive = {"type": "number"}, {"type": "integer", "minimum": 1}
    report = strict(
        since=seconds, until=seconds, bucket_s=positive, totals={"type": "object"}, **lists
    )
    report["properties"]["latency_cap"] = INT
    share = {"type": "number", "minimum": 0, "maximum": 1}
    stored = strict(id=STR, request_id=STR, score=share)
    return {"Status": strict(status=STR), "Report": report, "FeedbackStored": stored}


def schemas() -> dict[str, JSON]:
    return {
        **component_schemas(
            OpenAIChatRequest, AnthropicMessagesRequest, OpenAIChatCompletion, AnthropicMessage
        ),
        **component_schemas(OpenAIEmbeddingRequest, OpenAIEmbeddingList),
        **component_schemas(OpenAIResponsesRequest, OpenAIResponse),
        **component_schemas(OpenAICompletionRequest, OpenAICompletion),
        "OpenAICompletionStreamEvent": completion_events(),
        "OpenAIResponseStreamEvent": response_events(),
        "FeedbackRequest": feedback_request(),
        **model_lists(),
        **error_schemas(),
        **small_schemas(),
        **stream_events(),
    }


def header(description: str, required: bool, **schema: Any) -> JSON:
    return {"description": description, "required": required, "schema": {**STR, **schema}}


def id_headers() -> JSON:
    text = "The client's `x-request-id` (1-128 of `A-Z a-z 0-9 . _ : -`), else the gateway's id."
    echoed = header(text, True, pattern="^[A-Za-z0-9._:-]{1,128}$")
    unique = header("The gateway's own unique id of the request.", True, pattern="^[0-9a-f]{32}$")
    return {"x-request-id": echoed, "x-tierwise-request-id": unique}


def record_headers(required: bool) -> JSON:
    return {
        name: header(text, required and name != "x-tierwise-cost-usd", **schema)
        for name, (text, schema) in RECORD_HEADERS.items()
    }


def json_content(schema: JSON) -> JSON:
    return {"application/json": {"schema": schema}}


def errors(wire: str, *statuses: int, record: bool = False) -> dict[str, JSON]:
    """Error responses in the wire format `wire` (`OpenAI` or `Anthropic`)."""
    headers = {**id_headers(), **(record_headers(False) if record else {})}
    content = json_content(ref(f"{wire}Error"))
    return {
        str(s): {"description": ERRORS[s], "headers": headers, "content": content} for s in statuses
    }


def html(description: str) -> JSON:
    return {"description": description, "content": {"text/html": {"schema": STR}}}


SEE_DASHBOARD = {
    "description": "To the dashboard.",
    "headers": {"location": {"required": True, "schema": STR}},
}


def param(name: str, where: str, description: str, *, required: bool = False) -> JSON:
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": STR,
    }


def answer(description: str, content: JSON | None = None, **headers: JSON) -> JSON:
    out: JSON = {"description": description}
    if headers:
        out["headers"] = {name.replace("_", "-"): h for name, h in headers.items()}
    return out | ({"content": content} if content else {})


def operation(op_id: str, summary: str, responses: JSON, **extra: Any) -> JSON:
    """`extra`: `security` (default: a key), `parameters`, `body` (a JSON schema)."""
    out: JSON = {"operationId": op_id, "summary": summary, "security": SECURED}
    body = extra.pop("body", None)
    if body is not None:
        out["requestBody"] = {"required": True, "content": json_content(body)}
    return out | extra | {"responses": responses}


def chat(op_id: str, summary: str, wire: str, body: str, reply: str) -> JSON:
    events = {"schema": ref(f"{wire}StreamEvent")}
    content = {**json_content(ref(reply)), "text/event-stream": events}
    headers = {**id_headers(), **record_headers(True)}
    ok = {"description": "JSON, or server-sent events when `stream` is true.", "content": content}
    rid = param("x-request-id", "header", "An id to echo back and record (need not be unique).")
    failures = errors(wire, 400, 401, 403, 404, 413, 429, 502, record=True)
    responses = {"200": ok | {"headers": headers}, **failures}
    return operation(op_id, summary, responses, body=ref(body), parameters=[rid])


def embeddings() -> JSON:
    headers = {**id_headers(), **record_headers(True)}
    ok = answer("One vector per input, in input order.", json_content(ref("OpenAIEmbeddingList")))
    rid = param("x-request-id", "header", "An id to echo back and record (need not be unique).")
    failures = errors("OpenAI", 400, 401, 403, 404, 413, 429, 502, record=True)
    answers = {"200": ok | {"headers": headers}, **failures}
    summary = "OpenAI embeddings"
    body = ref("OpenAIEmbeddingRequest")
    return operation("createEmbedding", summary, answers, body=body, parameters=[rid])


RESPONSE_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
    "response.completed",
    "response.failed",
]


def response_events() -> JSON:
    """The Responses API's server-sent events: `event` names the type `data` carries."""
    data = {
        "contentMediaType": "application/json",
        "contentSchema": obj("type", "sequence_number", type=STR, sequence_number=INT),
    }
    return strict(event={"enum": RESPONSE_EVENTS}, data=data)


def _streamed(op_id: str, summary: str, answer: str, events: str, body: str) -> JSON:
    """An OpenAI operation answering JSON, or server-sent events when `stream` is true."""
    streamed = {"schema": ref(events)}
    content = {**json_content(ref(answer)), "text/event-stream": streamed}
    headers = {**id_headers(), **record_headers(True)}
    ok = {"description": "JSON, or server-sent events when `stream` is true.", "content": content}
    rid = param("x-request-id", "header", "An id to echo back and record (need not be unique).")
    failures = errors("OpenAI", 400, 401, 403, 404, 413, 429, 502, record=True)
    answers = {"200": ok | {"headers": headers}, **failures}
    return operation(op_id, summary, answers, body=ref(body), parameters=[rid])


def responses() -> JSON:
    summary = "OpenAI response (Responses API, answered through chat)"
    return _streamed(
        "createResponse",
        summary,
        "OpenAIResponse",
        "OpenAIResponseStreamEvent",
        "OpenAIResponsesRequest",
    )


def completion_events() -> JSON:
    """`text_completion` chunks, a usage chunk (no choices), then `[DONE]`."""
    text = {"text": STR, "index": INT, "logprobs": {"type": "null"}}
    choice = strict(**text, finish_reason=maybe("string"))
    chunk = strict(
        object={"const": "text_completion"}, id=STR, created=INT, model=STR, choices=arr(choice)
    )
    chunk["properties"]["usage"] = obj(*USAGE, **dict.fromkeys(USAGE, INT))
    chunks = {"anyOf": [chunk, ref("OpenAIError")]}
    data = {"contentMediaType": "application/json", "contentSchema": chunks}
    return obj("data", data={"anyOf": [{"const": "[DONE]"}, data]})


def completions() -> JSON:
    summary = "OpenAI legacy completion (one text prompt, answered through chat)"
    return _streamed(
        "createCompletion",
        summary,
        "OpenAICompletion",
        "OpenAICompletionStreamEvent",
        "OpenAICompletionRequest",
    )


def api_paths() -> JSON:
    lists = {"oneOf": [ref("OpenAIModelList"), ref("AnthropicModelList")]}
    models = {"200": answer("Every name.", json_content(lists)), **errors("OpenAI", 401)}
    version = param("anthropic-version", "header", "When sent, the list is in Anthropic's shape.")
    stored = answer("Stored.", json_content(ref("FeedbackStored")))
    feedback = {"200": stored, **errors("OpenAI", 400, 401, 404, 409, 413, 503)}
    openai = ("createChatCompletion", "OpenAI chat completion", "OpenAI", "OpenAIChatRequest")
    anthropic = ("createMessage", "Anthropic message", "Anthropic", "AnthropicMessagesRequest")
    return {
        "/v1/chat/completions": {"post": chat(*openai, "OpenAIChatCompletion")},
        "/v1/messages": {"post": chat(*anthropic, "AnthropicMessage")},
        "/v1/embeddings": {"post": embeddings()},
        "/v1/responses": {"post": responses()},
        "/v1/completions": {"post": completions()},
        "/v1/models": {"get": operation("listModels", "Names", models, parameters=[version])},
        "/v1/feedback": {
            "post": operation("createFeedback", "Score", feedback, body=ref("FeedbackRequest"))
        },
    }


def ops_paths() -> JSON:
    text = {"text/plain": {"schema": STR}}
    version = header("`0.0.4`.", True)
    metrics = {"200": answer("Prometheus text.", text, x_prometheus_format=version)}
    status = json_content(ref("Status"))
    ready = {
        "200": answer("Lazily loaded parts are up.", status),
        "503": answer("Starting.", status),
    }
    document = {"200": answer("This document.", json_content({"type": "object"}))}
    return {
        "/metrics": {"get": operation("metrics", "Metrics", metrics | errors("OpenAI", 401))},
        "/health": {
            "get": operation("health", "Liveness", {"200": answer("Up.", status)}, security=OPEN)
        },
        "/ready": {"get": operation("ready", "Readiness", ready, security=OPEN)},
        "/openapi.json": {"get": operation("openapi", "This document", document, security=OPEN)},
    }


def login_operation() -> JSON:
    form = {"schema": obj(key=STR)}
    body = {"application/x-www-form-urlencoded": form, "multipart/form-data": form}
    refused = html("A wrong or missing key: the sign-in form again.")
    cross_origin = json_content(ref("OpenAIError"))
    forbidden = answer("A key limited to some models, or a cross-origin post.")
    forbidden["content"] = html("")["content"] | cross_origin
    responses = {
        "303": SEE_DASHBOARD,
        "401": refused,
        "403": forbidden,
        **errors("OpenAI", 400, 413),
    }
    login = operation("dashboardLogin", "Sign in: sets the session cookie", responses)
    return login | {"security": OPEN, "requestBody": {"required": False, "content": body}}


FILTERS = [
    param("route", "query", "Only this route."),
    param("team", "query", "Only requests made with this team's keys."),
    param("model", "query", "Only requests this model answered."),
    param("refresh", "query", "Reload the page every `30` or `60` seconds (default off)."),
]


def dashboard_paths() -> JSON:
    query = {
        "security": [*SECURED, {"session": []}],
        "parameters": [
            param("since", "query", "`30m`, `24h` (default), `7d`, `2w`, `90s` or an ISO date."),
            param("bucket_s", "query", "Bucket width in seconds, when a positive integer."),
            *FILTERS,
        ],
    }
    pages = {"200": html("The dashboard."), "400": html("Unreadable `since` or filter.")}
    pages |= {"401": html("The sign-in form.")} | {str(s): html(ERRORS[s]) for s in (403, 409, 503)}
    listing = {
        **query,
        "parameters": [
            param("since", "query", "`30m`, `24h` (default), `7d`, `2w`, `90s` or an ISO date."),
            *FILTERS,
            param("limit", "query", "Requests per page (default 50, at most 500)."),
            param("offset", "query", "Requests to skip, newest first."),
        ],
    }
    detail = {
        "security": query["security"],
        "parameters": [
            param("request_id", "path", "The gateway's request id.", required=True)
            | {"schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,200}$"}}
        ],
    }
    one = pages | {
        "400": html("Not a request id."),
        "404": html("No such request, or not one this key may see."),
    }
    report = {"200": answer("The report.", json_content(ref("Report")))}
    report |= errors("OpenAI", 400, 401, 403, 409, 503)
    logout = {"303": SEE_DASHBOARD, **errors("OpenAI", 403)}
    return {
        "/dashboard": {"get": operation("dashboard", "Dashboard", pages, **query)},
        "/dashboard/data.json": {"get": operation("dashboardData", "Report", report, **query)},
        "/dashboard/requests": {
            "get": operation("dashboardRequests", "Recent requests", pages, **listing)
        },
        "/dashboard/requests/{request_id}": {
            "get": operation(
                "dashboardRequest", "One request: decision and attempts", one, **detail
            )
        },
        "/dashboard/login": {"post": login_operation()},
        "/dashboard/logout": {
            "post": operation("dashboardLogout", "Sign out", logout, security=OPEN)
        },
    }


def build() -> JSON:
    """The whole document."""
    info = {
        "title": "tierwise gateway",
        "version": __version__,
        "description": "OpenAI- and Anthropic-compatible LLM gateway. Errors use the "
        "wire format of the route and carry `x-request-id`.",
    }
    return {
        "openapi": "3.1.0",
        "info": info,
        "security": SECURED,
        "paths": {**api_paths(), **ops_paths(), **dashboard_paths()},
        "components": {"schemas": schemas(), "securitySchemes": SECURITY_SCHEMES},
    }


OPENAPI: JSON = build()
_BODY = orjson.dumps(OPENAPI)


async def openapi_json(request: web.Request) -> web.Response:
    """The OpenAPI document; needs no key."""
    return web.Response(body=_BODY, content_type="application/json")


def add_openapi_route(app: web.Application) -> None:
    """Serve `OPENAPI` at `GET /openapi.json` (before the app starts)."""
    app.router.add_get("/openapi.json", openapi_json)
