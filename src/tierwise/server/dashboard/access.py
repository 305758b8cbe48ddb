"""Who may see the dashboard: a key in `Authorization: Bearer` or `x-api-key`, or,
for browsers, a session cookie set by signing in with a key through a form. The
key is an API key or an admin key (`server.admin_keys`, the API ring's `admins`),
which gets the full view.

The cookie holds an expiring HMAC made with the key's digest, never the key.
Keys limited to some models cannot see the dashboard: it shows every route and
key name.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import urlsplit

from tierwise.errors import AccessError
from tierwise.server.auth import ApiKey, KeyRing

COOKIE = "tierwise_dashboard"
SESSION_S = 12 * 3600


def session_token(key: ApiKey, expires: int) -> str:
    return f"{expires}.{_mac(key, expires)}"


def _mac(key: ApiKey, expires: int) -> str:
    message = f"tierwise-dashboard|{key.name}|{expires}".encode()
    return hmac.new(key.sha256, message, hashlib.sha256).hexdigest()


def session_key(ring: KeyRing, token: str, now: float) -> ApiKey | None:
    """The key whose unexpired session `token` is, if any."""
    expires_text, _, mac = token.partition(".")
    if not expires_text.isdigit() or int(expires_text) < now:
        return None
    expires, match = int(expires_text), None
    for key in [*ring.named(), *ring.admin_keys()]:
        if hmac.compare_digest(_mac(key, expires), mac):
            match = key
    return match


def viewer(
    ring: KeyRing, headers: Mapping[str, str], cookies: Mapping[str, str], now: float
) -> tuple[ApiKey | None, bool]:
    """(key, whether it came from the session cookie); raises AccessError. Open
    (no key) only while no key, configured or virtual, exists."""
    if not ring.named():
        return None, False
    presented = "authorization" in headers or "x-api-key" in headers
    token = cookies.get(COOKIE)
    if presented or token is None:
        key = signed_key(ring, headers)
        from_cookie = False
    else:
        key, from_cookie = session_key(ring, token, now), True
        if key is None:
            raise AccessError("the dashboard session has expired or is invalid; sign in again")
    may_view(key)
    return key, from_cookie


def signed_key(ring: KeyRing, headers: Mapping[str, str]) -> ApiKey | None:
    """The admin key or API key presented; raises AccessError as the API does."""
    admin = ring.admin(headers)
    return admin if admin is not None else ring.authenticate(headers)


def may_view(key: ApiKey | None) -> None:
    if key is not None and key.models is not None:
        raise AccessError(
            f"API key {key.name!r} is limited to some models and may not view the dashboard",
            status=403,
        )


def same_origin(origin: str | None, host: str) -> None:
    """Refuse a form posted from another site."""
    if origin and origin != "null" and urlsplit(origin).netloc != host:
        raise AccessError("cross-origin form post refused", status=403)
