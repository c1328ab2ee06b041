"""`PatchImage`: the picture a vision model saw and how its tokens cover it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PatchImage:
    """The picture a vision model saw and how its tokens cover it.

    ``png``: the image as resized for the model, PNG bytes; ``width`` x ``height`` its pixels;
    the patch tokens form a ``rows`` x ``cols`` grid, row by row, starting at token ``first``
    (the tokens before it are [CLS] and the like).
    """

    png: bytes
    width: int
    height: int
    rows: int
    cols: int
    first: int
