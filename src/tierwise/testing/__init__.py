"""Test helpers: a fake LLM upstream with fault injection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tierwise.testing.fake_upstream import FakeUpstream, ReceivedRequest, Scripted, text_of

__all__ = ["FakeUpstream", "ReceivedRequest", "Scripted", "text_of"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tierwise.testing import fake_upstream

        return getattr(fake_upstream, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
