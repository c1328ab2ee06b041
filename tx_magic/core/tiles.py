"""Tile math shared by dense and reduced attention: max over tiles of a matrix.

Max, not mean, so that a sharp diagonal or a sink column stays visible at any zoom-out. Two
tilings are used: fixed-size runs (``pool`` x ``pool`` tokens, the last run partial) for
overviews, and ``numpy.array_split``'s even split into T parts for the thumbnails of the grid.
"""

from __future__ import annotations

import itertools
from typing import Any, cast

import numpy as np

#: Tiles a side of each head's thumbnail in the grid of heads (fewer when a kind has fewer tokens).
THUMBNAIL_SIZE = 32


def tile_starts(n: int, tiles: int) -> np.ndarray:
    """First index of each of `tiles` parts of range(n), split as ``numpy.array_split`` does."""
    size, extra = divmod(n, tiles)
    i = np.arange(tiles)
    return i * size + np.minimum(i, extra)


def runs_max(x: np.ndarray, axis: int, start: int, count: int, size: int) -> np.ndarray:
    """Max over `count` consecutive runs of `size` along `axis` from `start` (NaN ignored).

    Along the last axis by strided passes, else by reshaping and reducing a middle axis: both keep
    numpy's inner loop on contiguous memory (reducing a short innermost axis is ~10x slower).
    """
    index: list[Any] = [slice(None)] * x.ndim
    if axis == x.ndim - 1:
        index[axis] = slice(start, start + count * size, size)
        out: np.ndarray = x[tuple(index)].copy()
        for i in range(1, size):
            index[axis] = slice(start + i, start + count * size, size)
            np.fmax(out, x[tuple(index)], out=out)
        return out
    index[axis] = slice(start, start + count * size)
    part = x[tuple(index)]
    grouped = part.reshape((*part.shape[:axis], count, size, *part.shape[axis + 1:]))
    return cast(np.ndarray, np.fmax.reduce(grouped, axis=axis + 1))


def split_max(x: np.ndarray, parts: int, axis: int) -> np.ndarray:
    """Max over `parts` pieces of `axis` split as numpy.array_split does."""
    size, extra = divmod(x.shape[axis], parts)
    pieces = [runs_max(x, axis, 0, extra, size + 1)] if extra else []
    if parts > extra:
        pieces.append(runs_max(x, axis, extra * (size + 1), parts - extra, size))
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis)


def pool_max(x: np.ndarray, pool: int, axis: int) -> np.ndarray:
    """Max over consecutive runs of `pool` along `axis`, the last run partial."""
    n = x.shape[axis]
    full = n // pool
    pieces = [runs_max(x, axis, 0, full, pool)] if full else []
    if full * pool < n:
        pieces.append(runs_max(x, axis, full * pool, 1, n - full * pool))
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis)


def pool_matrix(values: np.ndarray, pool: int) -> np.ndarray:
    """(..., Q, K) max-pooled over `pool` x `pool` tiles: (..., ceil(Q/pool), ceil(K/pool)) float32."""
    if pool == 1:
        return np.asarray(values, dtype=np.float32)
    return pool_max(pool_max(values, pool, values.ndim - 2), pool, values.ndim - 1)


def split_matrix(values: np.ndarray, size: int) -> np.ndarray:
    """(..., Q, K) max over size x size tiles split as array_split does (rows first: then it is small)."""
    return split_max(split_max(values, size, values.ndim - 2), size, values.ndim - 1)


def thumbnails_from_tiles(tiles: np.ndarray, tile: int, q: int, k: int, size: int) -> np.ndarray:
    """Thumbnails (L, H, size, size) from overview tiles (L, H, ceil(q/tile), ceil(k/tile)) of `tile`
    tokens: each thumbnail cell is the max of the overview tiles it overlaps."""

    def spans(n: int) -> list[tuple[int, int]]:
        starts = [*tile_starts(n, size), n]
        return [(a // tile, -(-b // tile)) for a, b in itertools.pairwise(starts)]

    rows = np.stack([tiles[:, :, a:b].max(2) for a, b in spans(q)], axis=2)
    return np.stack([rows[..., a:b].max(-1) for a, b in spans(k)], axis=-1).astype(np.float32)
