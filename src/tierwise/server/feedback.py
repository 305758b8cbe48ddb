"""`POST /v1/feedback`: a user's score for a request id."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tierwise.errors import RequestError
from tierwise.server import validate as v
from tierwise.store.base import Feedback

THUMBS = {"up": 1.0, "down": 0.0, "thumbs_up": 1.0, "thumbs_down": 0.0}


def parse_feedback(body: Any, api_key: str | None, now: float | None = None) -> Feedback:
    """`{"request_id": ..., "score": "up" | "down" | true | false | 1-5, "comment": ...}`;
    the score is kept as given and normalised to [0, 1]."""
    body = v.require_object(body, "body")
    request_id = v.req_str(body, "request_id")
    raw = body.get("score")
    comment = v.opt_str(body, "comment")
    return Feedback(
        feedback_id=uuid.uuid4().hex,
        request_id=request_id,
        created_at=time.time() if now is None else now,
        score=normalise(raw),
        raw_score=str(raw),
        comment=comment[:2000] if comment else None,
        api_key=api_key,
    )


def normalise(raw: Any) -> float:
    if isinstance(raw, bool):
        return 1.0 if raw else 0.0
    if isinstance(raw, str) and raw.lower() in THUMBS:
        return THUMBS[raw.lower()]
    if isinstance(raw, int | float) and 1 <= raw <= 5:
        return (float(raw) - 1.0) / 4.0
    raise RequestError(
        '\'score\' must be "up", "down", true, false, or a number from 1 to 5', param="score"
    )
