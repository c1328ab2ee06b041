"""Views users add: ``tx_magic.register_view(name, esm)``.

`esm` is an ES module (its source as a string, or the path of a ``.js`` / ``.mjs`` file, read now) that
exports ``render`` (or a default object with ``render``). Its source travels with every widget (the
``_views`` trait) and inside every report, and the renderer imports it from there: nothing is fetched.
In its own tab, ``render(view)`` is called whenever the selection or the layer changes, with:

- ``view.el``: the tab's element, the module's to fill (keep token text as text: ``textContent``);
- ``view.selection``: the shared selection (``kind``, ``layer``, ``heads``, ``head``, ``token``, ...);
- ``view.layer``: the selected layer, ``{kind, layer, heads, queries, keys, pool, data}``, ``data`` a
  Float32Array (heads x queries x keys), or null while it loads;
- ``view.tokens``: ``{queries, keys}``, the token strings;
- ``view.select(partial)``: change the shared selection (e.g. ``{layer: 2, head: 3}``).

If ``render`` returns a function, it is called before the next call and when the tab goes away.
A module that imports other URLs is refused: a report opens offline and a widget loads nothing.
"""

from __future__ import annotations

import os
import pathlib
import re

from ..core.errors import OptionError
from .schema import UserView

#: Largest module source accepted (it travels with every widget and report).
MAX_SOURCE_BYTES = 2 * 1024 * 1024
_IMPORT = re.compile(r"""(?:^|[;\s])import\s*(?:\(\s*)?["']|\bfrom\s*["']""")
_VIEWS: dict[str, str] = {}


def register_view(name: str, esm: str | os.PathLike[str]) -> None:
    """Add a view in its own tab of every widget and report (a later `name` replaces an earlier one)."""
    if not isinstance(name, str) or not name.strip() or len(name) > 40:
        raise OptionError(f"a view's name is its tab's title: a short text, got {name!r}")
    source = _source(esm)
    if _IMPORT.search(source):
        raise OptionError(f"view {name!r} imports another module; a view must be one self-contained module "
                          "(bundle it first, e.g. with esbuild --bundle --format=esm): reports open offline")
    if "render" not in source:
        raise OptionError(f"view {name!r} has no render function: export function render(view) {{ ... }}")
    _VIEWS[name] = source


def unregister_view(name: str) -> None:
    """Remove a registered view."""
    if name not in _VIEWS:
        raise OptionError(f"no view {name!r} is registered; registered: {sorted(_VIEWS) or 'none'}")
    del _VIEWS[name]


def encode_views() -> list[UserView]:
    """The registered views, as the ``_views`` trait and reports carry them."""
    return [{"name": name, "source": source} for name, source in _VIEWS.items()]


def _source(esm: str | os.PathLike[str]) -> str:
    looks_like_path = isinstance(esm, os.PathLike) or (
        isinstance(esm, str) and "\n" not in esm and esm.strip().endswith((".js", ".mjs")))
    if looks_like_path:
        path = pathlib.Path(esm).expanduser()
        if not path.is_file():
            raise OptionError(f"no view module at {path}: give the module's source as a string, or an existing file")
        source = path.read_text(encoding="utf-8")
    elif isinstance(esm, str):
        source = esm
    else:
        raise OptionError(f"esm is an ES module's source (a string) or a path, got {type(esm).__name__}")
    if len(source.encode("utf-8")) > MAX_SOURCE_BYTES:
        raise OptionError(f"the view's module is over {MAX_SOURCE_BYTES // 1024 // 1024} MB")
    return source
