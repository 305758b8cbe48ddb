"""Options of routers and checks from config: an unknown name is a ConfigError naming
its key, and errors raised while building a nested part name the part's full key.

A registry calls a factory with the config's options as keywords and the gateway's
`BuildContext` as the keyword `context`; the factory raises a ConfigError for an option
it does not take (`reject_unknown`, with the names it declares). `keywords` makes such a
factory from a constructor and its option names."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from tierwise.errors import ConfigError

T = TypeVar("T")


def reject_unknown(
    options: Mapping[str, object], known: Collection[str], what: str, key: str
) -> None:
    """A ConfigError at `key.<option>` for the first option not in `known`."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(
            f"{what}: unknown option {unknown[0]!r}; known: {', '.join(sorted(known))}",
            key=f"{key}.{unknown[0]}",
        )


def keywords(
    build: Callable[..., T],
    known: Collection[str],
    what: str,
    key: str,
    *,
    pass_context: bool = False,
) -> Callable[..., T]:
    """A registry factory (options as keywords, plus the gateway's `context`) for `build`,
    which takes the options named in `known` as keywords, and the context as its first
    argument when `pass_context`."""

    def factory(*, context: Any, **options: object) -> T:
        reject_unknown(options, known, what, key)
        return build(context, **options) if pass_context else build(**options)

    return factory


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
