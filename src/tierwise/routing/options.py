"""Options of routers and checks from config: an unknown name is a ConfigError naming
its key, and errors raised while building a nested part name the part's full key."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from tierwise.errors import ConfigError

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
INJECTED = frozenset({"context"})


def reject_unknown(
    factory: Callable[..., object], options: Mapping[str, object], what: str, key: str
) -> None:
    """A ConfigError at `key.<option>` for the first option `factory` does not take.
    A factory that takes `**options` is left to check its own."""
    parameters = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    known = sorted(n for n, p in parameters.items() if p.kind in _NAMED and n not in INJECTED)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(
            f"{what}: unknown option {unknown[0]!r}; known: {', '.join(known)}",
            key=f"{key}.{unknown[0]}",
        )


def rekey(exc: ConfigError, base: str, prefix: str) -> ConfigError:
    """`exc` with its key moved under `prefix`: `base` and `base.x` become `prefix`
    and `prefix.x`; any other key `k` becomes `prefix.k`."""
    key = exc.key or base
    if key == base or key.startswith((base + ".", base + "[")):
        moved = prefix + key[len(base) :]
    else:
        moved = f"{prefix}.{key}"
    return ConfigError(exc.problem, file=exc.file, key=moved)


@contextmanager
def keyed(base: str, prefix: str) -> Iterator[None]:
    """Re-raise a ConfigError from the block with its key moved from `base` to `prefix`."""
    try:
        yield
    except ConfigError as exc:
        raise rekey(exc, base, prefix) from None
