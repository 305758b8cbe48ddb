"""Who is calling, the budget scopes they spend in, and the rate limit check."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from tierwise.errors import AdmissionError
from tierwise.gateway import Origin
from tierwise.server.auth import ApiKey
from tierwise.state.ratelimit import RateLimiter
from tierwise.types import ChatRequest

CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Caller:
    """The key's name and team, the user (the request's, else the key's), and the
    scopes the request spends in."""

    name: str | None
    scopes: tuple[str, ...]
    team: str | None = None
    user: str | None = None

    def origin(self, client_request_id: str | None) -> Origin:
        """This caller as the gateway logs and limits it, with the client's id."""
        return Origin(self.name, self.team, self.user, client_request_id, self.scopes)


def caller_of(key: ApiKey | None, request: ChatRequest) -> Caller:
    """Scopes a request spends in: `all`, `key:<name>`, `team:<team>`, `user:<user>`
    (a deployment's `model:<name>` is added per attempt); the user is the request's,
    or the key's when the request names none."""
    scopes = ["all"]
    if key is not None:
        scopes.append(f"key:{key.name}")
        if key.team:
            scopes.append(f"team:{key.team}")
    user = request.user or (key.user if key is not None else None)
    if user:
        scopes.append(f"user:{user}")
    if key is None:
        return Caller(None, tuple(scopes), user=user)
    return Caller(key.name, tuple(scopes), key.team, user)


async def admit(limiter: RateLimiter | None, caller: Caller, request: ChatRequest) -> None:
    """Raise AdmissionError (429 with Retry-After) when a rate limit is full, or
    (503) when the limits' shared store is unreachable and state fails closed."""
    if limiter is None:
        return
    chars = sum(len(m.text()) for m in request.messages)
    tokens = chars // CHARS_PER_TOKEN + (request.max_tokens or 0)
    scopes = [*caller.scopes, f"model:{request.model}"]
    admission = await limiter.admit(scopes, requests=1, tokens=tokens, now=time.time())
    if admission.allowed:
        return
    if admission.unavailable:
        raise AdmissionError(
            "rate limits cannot be checked: their shared store is unreachable",
            status=503,
            retry_after_s=admission.retry_after_s,
        )
    if admission.retry_after_s is None:
        raise AdmissionError("request is larger than the token rate limit", status=413)
    wait = math.ceil(admission.retry_after_s)
    raise AdmissionError(f"rate limit reached; retry after {wait}s", retry_after_s=wait)
