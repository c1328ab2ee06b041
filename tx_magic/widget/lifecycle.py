"""Widgets live as long as the cell output that shows them.

A widget's data stays in the kernel and in the browser until it is closed (ipywidgets keeps
every widget it made), so a cell re-run 50 times would keep 50 traces alive in both. When a
notebook cell runs again, the widgets its previous run made are closed: their outputs are
already gone. A widget another cell displays too is kept (that output still shows it).
"""

from __future__ import annotations

import weakref
from typing import Any

#: Per notebook cell id: (the execution count of its last run, the widgets that run made).
_BY_CELL: dict[str, tuple[int, list[weakref.ref[Any]]]] = {}


def adopt(widget: Any) -> None:
    """Note that the running cell made `widget`; close what the previous run of that cell made."""
    cell, run = _running_cell()
    if cell is None:
        return
    last_run, made = _BY_CELL.get(cell, (run, []))
    if last_run != run:
        for ref in made:
            old = ref()
            if old is not None and old is not widget and getattr(old, "comm", None) is not None \
                    and shown_in(old) <= {cell}:  # shown by another cell too: that output still needs it
                old.close()
        made = []
    made.append(weakref.ref(widget))
    _BY_CELL[cell] = (run, made)


def displayed(widget: Any) -> None:
    """Note that the running cell displays `widget` (called from its `_repr_mimebundle_`)."""
    cell, _ = _running_cell()
    if cell is not None:
        widget.__dict__.setdefault("_tx_shown_in", set()).add(cell)


def shown_in(widget: Any) -> set[str]:
    """Ids of the notebook cells that displayed `widget`."""
    cells: set[str] = widget.__dict__.get("_tx_shown_in", set())
    return cells


def _running_cell() -> tuple[str | None, int]:
    """(cell id, execution count) of the notebook cell being run, or (None, 0) outside one."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None, 0
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return None, 0
    try:
        parent = kernel.get_parent()
        cell = parent.get("metadata", {}).get("cellId")
    except (AttributeError, TypeError):
        return None, 0
    return (str(cell), int(shell.execution_count)) if cell else (None, 0)
