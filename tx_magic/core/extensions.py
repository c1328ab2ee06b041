"""The one place where a lower layer calls a higher one, by name instead of by import.

A `Trace` (core) offers analyses (``trace.stats()``, ``trace.rollout()``, ``trace.hidden``...) that
the analysis layer computes, and results offer ``.show()``, which the widget layer draws. Those
layers `provide` their functions here when they are imported; ``tx_magic/__init__`` imports them,
so everything is provided before any trace exists. Imports stay one way: nothing in `core`
imports `analysis` or `widget`, not even inside a function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_PROVIDED: dict[str, Callable[..., Any]] = {}


def provide(name: str, function: Callable[..., Any]) -> None:
    """Make `function` the implementation of `name` (a later call replaces an earlier one)."""
    _PROVIDED[name] = function


def call(name: str, *args: Any, **kwargs: Any) -> Any:
    """Call what was provided for `name`."""
    try:
        function = _PROVIDED[name]
    except KeyError:
        raise RuntimeError(f"nothing provides {name!r}: import tx_magic (the package), not only tx_magic.core") \
            from None
    return function(*args, **kwargs)
