"""Batches: read a texts file and run every text, collecting the lines that fail instead of stopping.

A texts file holds one text per line, or JSON lines: ``{"text": ...}``, ``{"text": ..., "pair": ...}``
(a sentence pair) or ``{"source": ..., "target": ...}`` (an encoder-decoder's two texts). It is
JSON lines when its first non-blank line starts with ``{``. Blank lines are skipped; line
numbers count every line of the file, from 1.
"""

from __future__ import annotations

import json
import pathlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ..core.errors import TxMagicError

T = TypeVar("T")


class EmptyTextsFile(TxMagicError):
    """The texts file holds no text at all."""


@dataclass(frozen=True)
class BatchItem:
    """One text of a batch and the line it came from."""

    line: int
    text: str
    pair: str | None = None
    target: str | None = None


@dataclass(frozen=True)
class Failure:
    """A line of the batch that could not be read, run or written, and why."""

    line: int
    message: str


def read_texts(path: str | pathlib.Path) -> tuple[list[BatchItem], list[Failure]]:
    """The texts of `path` and the lines that could not be read. `EmptyTextsFile` when it has none;
    OSError when it cannot be read."""
    lines = pathlib.Path(path).expanduser().read_text(encoding="utf-8-sig").splitlines()
    numbered = [(i, line) for i, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise EmptyTextsFile(f"The texts file {str(path)!r} is empty: give one text per line (or JSON lines).")
    if not numbered[0][1].lstrip().startswith("{"):
        return [BatchItem(i, line) for i, line in numbered], []
    items, failures = [], []
    for i, line in numbered:
        try:
            items.append(parse_json_line(i, line))
        except ValueError as exc:
            failures.append(Failure(i, str(exc)))
    return items, failures


def parse_json_line(number: int, line: str) -> BatchItem:
    """One JSON line as a `BatchItem`; ValueError saying what is wrong with it."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object with \"text\" or \"source\", got {type(record).__name__}")
    text = record.get("text", record.get("source"))
    if text is None:
        raise ValueError(f"no \"text\" or \"source\" field (it has {sorted(record) or 'no fields'})")
    fields = {"text": text, "pair": record.get("pair"), "target": record.get("target")}
    for name, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise ValueError(f"\"{name}\" must be a string, got {type(value).__name__}")
    return BatchItem(number, text, pair=fields["pair"], target=fields["target"])


def run_each(items: Sequence[BatchItem], job: Callable[[BatchItem], T], *, progress: bool | None = None,
             label: str = "texts") -> tuple[list[tuple[BatchItem, T]], list[Failure]]:
    """Run `job` on every item, with a progress bar on stderr (default: when it is a terminal).

    A failing item becomes a `Failure` (its message) and the batch goes on.
    """
    from tqdm import tqdm

    show = sys.stderr.isatty() if progress is None else progress
    done: list[tuple[BatchItem, T]] = []
    failures: list[Failure] = []
    for item in tqdm(items, desc=label, unit="text", file=sys.stderr, disable=not show, leave=False):
        try:
            done.append((item, job(item)))
        except Exception as exc:  # noqa: BLE001 - one odd text must not stop the batch; its line says why
            failures.append(Failure(item.line, _message(exc)))
    return done, failures


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, (TxMagicError, ValueError, OSError)) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def describe(item: BatchItem) -> str:
    """A short label for the text selector and messages: "line 3: What is ..."."""
    text = " ".join(item.text.split())
    return f"line {item.line}: " + (text if len(text) <= 70 else text[:69] + "…")

