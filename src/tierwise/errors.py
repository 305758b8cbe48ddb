"""One error tree for tierwise.

    TierwiseError
    +-- ConfigError                 invalid configuration (names file, key, problem)
    +-- RequestError                a client's request is malformed (names the parameter)
    |   +-- NoCapableDeploymentError  no deployment of the route accepts what it needs
    +-- AccessError                 no or unknown API key, or a model the key may not use
    +-- AdmissionError              over a rate limit before routing (with retry_after_s)
    +-- RouteNotFoundError          the request names no known route, tier or model
    +-- ProviderError               an upstream call failed; `kind` is the taxonomy
    |   +-- RateLimitedError        429, with `retry_after_s` when the provider sent one
    |   +-- UpstreamTimeoutError    connect or total timeout
    |   +-- FirstTokenTimeoutError  no first token within the time-to-first-token limit
    |   +-- UpstreamServerError     5xx
    |   +-- UpstreamConnectionError refused, reset, DNS, closed mid-body
    |   +-- ContextWindowError      prompt + max tokens exceed the model's window
    |   +-- ContentPolicyError      blocked by the provider's content filter
    |   +-- UpstreamAuthError       401/403 from the provider
    |   +-- BadRequestError         the request itself is invalid; never retried
    |   +-- InvalidResponseError    unparseable, empty or malformed answer
    +-- AllAttemptsFailedError      every planned attempt failed; lists each one
    +-- StreamInterruptedError      a stream failed after bytes reached the client

Provider errors are raised only by provider adapters, which translate wire
errors into this taxonomy; everything above them sees `ErrorKind` values.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from tierwise.record import AttemptRecord, RequestRecord


class ErrorKind(StrEnum):
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    FIRST_TOKEN_TIMEOUT = "first_token_timeout"
    UPSTREAM_5XX = "upstream_5xx"
    CONNECTION = "connection"
    CONTEXT_WINDOW = "context_window"
    CONTENT_POLICY = "content_policy"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    INVALID_RESPONSE = "invalid_response"


class TierwiseError(Exception):
    """Base of every error tierwise raises."""


class ConfigError(TierwiseError):
    def __init__(self, problem: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file, self.key, self.problem = file, key, problem
        where = ": ".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {problem}" if where else problem)


class MissingExtraError(TierwiseError):
    """A feature whose optional dependencies (an extra) are not installed."""

    def __init__(self, what: str, extra: str, missing: list[str]) -> None:
        self.extra, self.missing = extra, missing
        super().__init__(
            f"{what} needs the '{extra}' extra ({', '.join(missing)} not installed): "
            f"pip install 'tierwise[{extra}]'"
        )


class RequestError(TierwiseError):
    def __init__(self, message: str, *, param: str | None = None, status: int = 400) -> None:
        self.message, self.param, self.status = message, param, status
        super().__init__(message)


class NoCapableDeploymentError(RequestError):
    """No deployment the request could use accepts what it needs (images, audio,
    tools, a JSON schema); raised before any upstream call."""

    def __init__(
        self, target: str, needs: frozenset[str], described: str, *, param: str | None = None
    ) -> None:
        self.target, self.needs = target, needs
        super().__init__(f"no deployment of route {target!r} accepts {described}", param=param)


class AccessError(TierwiseError):
    def __init__(self, message: str, *, status: int = 401) -> None:
        self.message, self.status = message, status
        super().__init__(message)


class AdmissionError(TierwiseError):
    """A request refused before routing: over a rate limit (429, with retry_after_s)."""

    def __init__(self, message: str, *, status: int = 429, retry_after_s: float | None = None):
        self.message, self.status, self.retry_after_s = message, status, retry_after_s
        super().__init__(message)


class RouteNotFoundError(TierwiseError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        super().__init__(f"unknown model or route {name!r}; known: {', '.join(sorted(known))}")


class ProviderError(TierwiseError):
    kind: ClassVar[ErrorKind] = ErrorKind.UPSTREAM_5XX

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
        deployment: str | None = None,
    ) -> None:
        self.message, self.status = message, status
        self.retry_after_s, self.deployment = retry_after_s, deployment
        super().__init__(message)


class RateLimitedError(ProviderError):
    kind = ErrorKind.RATE_LIMITED


class UpstreamTimeoutError(ProviderError):
    kind = ErrorKind.TIMEOUT


class FirstTokenTimeoutError(ProviderError):
    kind = ErrorKind.FIRST_TOKEN_TIMEOUT


class UpstreamServerError(ProviderError):
    kind = ErrorKind.UPSTREAM_5XX


class UpstreamConnectionError(ProviderError):
    kind = ErrorKind.CONNECTION


class ContextWindowError(ProviderError):
    kind = ErrorKind.CONTEXT_WINDOW


class ContentPolicyError(ProviderError):
    kind = ErrorKind.CONTENT_POLICY


class UpstreamAuthError(ProviderError):
    kind = ErrorKind.AUTH


class BadRequestError(ProviderError):
    kind = ErrorKind.BAD_REQUEST


class InvalidResponseError(ProviderError):
    kind = ErrorKind.INVALID_RESPONSE


ERROR_BY_KIND: dict[ErrorKind, type[ProviderError]] = {
    cls.kind: cls
    for cls in (
        RateLimitedError,
        UpstreamTimeoutError,
        FirstTokenTimeoutError,
        UpstreamServerError,
        UpstreamConnectionError,
        ContextWindowError,
        ContentPolicyError,
        UpstreamAuthError,
        BadRequestError,
        InvalidResponseError,
    )
}


class AllAttemptsFailedError(TierwiseError):
    """Every planned attempt failed; `record` lists each attempt and why.

    `status` says what the client may do: 503 (with `retry_after_s`) when no
    deployment could be called at all, 429 when every call was rate-limited, 400
    when every call was refused for content policy or the request itself, 402 when
    budgets refused every call, 502 otherwise."""

    def __init__(self, record: RequestRecord) -> None:
        self.record = record
        super().__init__(describe_attempts(record.attempts))

    @property
    def status(self) -> int:
        """The HTTP status that best summarizes the failures."""
        attempts = self.record.attempts
        called = {a.trigger for a in attempts if a.called and a.trigger}
        skipped = {a.trigger for a in attempts if not a.called and a.trigger}
        if called == {ErrorKind.BAD_REQUEST.value}:
            return 400
        if not called:
            return _skipped_status(skipped)
        if called == {ErrorKind.RATE_LIMITED.value}:
            return 429
        if called <= {ErrorKind.CONTENT_POLICY.value, ErrorKind.CONTEXT_WINDOW.value}:
            return 400
        return 502

    @property
    def code(self) -> str | None:
        """A machine-readable code for the client's error object."""
        if self.status == 503:
            return "service_unavailable"
        if self.status == 429:
            return "rate_limit_exceeded"
        if self.status == 400 and self._refusal() is not None:
            return "content_policy_violation"
        return None

    @property
    def message(self) -> str:
        """What the client reads: the provider's own refusal for a content-policy
        block, else every attempt and why."""
        refusal = self._refusal()
        if self.status == 400 and refusal is not None:
            return f"the request was refused for content policy: {refusal}"
        return str(self)

    @property
    def retry_after_s(self) -> float | None:
        """The earliest time a retry could be served: the soonest half-open for a
        503, the provider's shortest Retry-After for a 429."""
        if self.status not in (429, 503):
            return None
        waits = [a.retry_after_s for a in self.record.attempts if a.retry_after_s is not None]
        return min(waits) if waits else None

    def _refusal(self) -> str | None:
        details = [
            a.detail
            for a in self.record.attempts
            if a.called and a.trigger == ErrorKind.CONTENT_POLICY.value
        ]
        return details[-1] if details else None


CAPABILITY = "capability"
"""The trigger of a deployment skipped because it lacks what the request needs."""


def _skipped_status(triggers: set[str]) -> int:
    """The status when no deployment was called: a context window too small for,
    or a capability missing from, every one is the request's fault (400), spent
    budgets are 402, and an open circuit or unreachable shared state is 503."""
    if triggers and triggers <= {ErrorKind.CONTEXT_WINDOW.value, CAPABILITY}:
        return 400
    if triggers == {"budget"}:
        return 402
    return 503


class StreamInterruptedError(TierwiseError):
    """A stream failed after content had been sent; `record` holds the attempts."""

    def __init__(self, message: str, record: RequestRecord) -> None:
        self.record = record
        super().__init__(message)


def describe_attempts(attempts: list[AttemptRecord]) -> str:
    """`all N calls failed: ...`, naming skipped deployments apart from calls."""
    if not attempts:
        return "no deployment could be tried"
    parts = [f"{a.deployment}: {a.trigger} ({a.detail})" for a in attempts]
    calls = sum(1 for a in attempts if a.called)
    skipped = len(attempts) - calls
    if calls == 0:
        return f"no deployment could be called ({skipped} skipped): " + "; ".join(parts)
    head = f"all {calls} call{'s' if calls != 1 else ''} failed"
    if skipped:
        head += f" and {skipped} deployment{'s' if skipped != 1 else ''} skipped"
    return head + ": " + "; ".join(parts)
