"""How a trace stores one attention kind: every weight (`DenseAttention`), or a long input's
weights reduced as the model ran (`ReducedAttention`). Both answer the same questions
(`AttentionStore`), so nothing above this module asks which one it holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np

from .tiles import pool_matrix, split_matrix, thumbnails_from_tiles

#: Per-row values a reduced store keeps for every layer, head and query (what statistics are computed from).
ROW_STATS = ("entropy", "max_weight", "distance", "first", "previous", "self", "local", "norm_entropy",
             "induction")
#: Largest attention `materialize` builds from a reduced store (bytes of float32).
MATERIALIZE_LIMIT = 1024 ** 3


@runtime_checkable
class AttentionStore(Protocol):
    """One attention kind, (layers, heads, queries, keys), however it is kept."""

    @property
    def shape(self) -> tuple[int, int, int, int]: ...
    @property
    def streamed(self) -> bool:
        """Whether the weights were reduced as the model ran (whole layers exist only pooled)."""
    @property
    def pool(self) -> int:
        """The finest pool a whole layer comes at: 1, or a reduced store's overview tile."""
    @property
    def nbytes(self) -> int: ...
    def layer(self, layer: int) -> np.ndarray:
        """Exact weights of one layer, (heads, queries, keys) float32."""
    def block(self, layer: int, q0: int, q1: int, k0: int, k1: int) -> np.ndarray:
        """Exact weights of queries q0:q1 and keys k0:k1 of one layer, (heads, q, k) float32."""
    def pooled(self, layer: int, pool: int) -> np.ndarray:
        """One layer max-pooled over pool x pool tiles (`pool` a multiple of `self.pool`)."""
    def thumbnails_at(self, size: int) -> np.ndarray:
        """Every head max-pooled to size x size tiles split as array_split does: (L, H, size, size)."""
    def top_keys(self, layer: int, k: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Each query row's k largest weights and their keys, largest first: (values, index), (H, Q, k)."""
    @property
    def top_width(self) -> int:
        """The most keys per row `top_keys` gives."""
    def materialize(self) -> np.ndarray:
        """Every weight, (layers, heads, queries, keys) float32."""


#: Keys per query row of a dense store's top-k (a reduced store keeps its own number).
DENSE_TOP_K = 8


class DenseAttention:
    """Every weight of one kind as a float32 array (layers, heads, queries, keys)."""

    streamed = False
    pool = 1

    def __init__(self, array: np.ndarray, *, softmax_rows: bool = False) -> None:
        self.array = array
        #: Made by tx_magic's capture from finite scores (`tx_magic.capturing.dense`): every row is a softmax
        #: row, so the trace skips its value checks (NaN, negative weights, row sums).
        self.softmax_rows = softmax_rows

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.array if dtype is None else self.array.astype(dtype)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        layers, heads, q, k = self.array.shape
        return int(layers), int(heads), int(q), int(k)

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)

    def layer(self, layer: int) -> np.ndarray:
        return cast(np.ndarray, self.array[layer])

    def block(self, layer: int, q0: int, q1: int, k0: int, k1: int) -> np.ndarray:
        return self.array[layer, :, q0:q1, k0:k1]

    def pooled(self, layer: int, pool: int) -> np.ndarray:
        return pool_matrix(self.array[layer], pool)

    def thumbnails_at(self, size: int) -> np.ndarray:
        layers, heads = self.array.shape[:2]
        out = np.empty((layers, heads, size, size), dtype=np.float32)
        for layer in range(layers):
            out[layer] = split_matrix(self.array[layer], size)
        return out

    @property
    def top_width(self) -> int:
        return min(DENSE_TOP_K, self.shape[3])

    def top_keys(self, layer: int, k: int | None) -> tuple[np.ndarray, np.ndarray]:
        x = np.nan_to_num(self.array[layer], nan=0.0, posinf=0.0, neginf=0.0)
        kept = min(self.top_width if k is None else k, x.shape[-1])
        index = np.argpartition(-x, kept - 1, axis=-1)[..., :kept]
        values = np.take_along_axis(x, index, -1)
        order = np.argsort(-values, axis=-1, kind="stable")
        return np.take_along_axis(values, order, -1), np.take_along_axis(index, order, -1)

    def materialize(self) -> np.ndarray:
        return self.array


@dataclass
class ReducedAttention:
    """Self-attention of a long input, reduced per layer as the model ran (`tx_magic.capturing.streamed`):
    max-pooled overview tiles, thumbnails, each row's top keys and statistics, and the queries, keys
    and log-sum-exp from which any block of exact weights is recomputed."""

    shape: tuple[int, int, int, int]
    tile: int
    tiles: np.ndarray            # (L, H, ceil(Q/tile), ceil(K/tile)) float32, max-pooled
    top_values: np.ndarray       # (L, H, Q, top_k) float32, strongest first
    top_index: np.ndarray        # (L, H, Q, top_k) int32
    row_stats: dict[str, np.ndarray]  # name -> (L, H, Q) float32
    lse: np.ndarray              # (L, H, Q) float32
    queries: np.ndarray          # (L, H, Q, d) float32, after position encoding
    keys: np.ndarray             # (L, Hkv, K, d) float32
    scaling: np.ndarray          # (L,) float32
    causal: bool
    dtype: str = "float32"
    meta: dict[str, Any] = field(default_factory=dict)
    thumbnails: np.ndarray | None = None  # (L, H, T, T) float32, max over array_split tiles

    streamed = True

    @property
    def pool(self) -> int:
        return int(self.tile)

    @property
    def nbytes(self) -> int:
        arrays = [self.tiles, self.top_values, self.top_index, self.lse, self.queries, self.keys,
                  *self.row_stats.values(), *([] if self.thumbnails is None else [self.thumbnails])]
        return int(sum(a.nbytes for a in arrays))

    def block(self, layer: int, q0: int, q1: int, k0: int, k1: int) -> np.ndarray:
        """Exact weights ``exp(q.k * scale - lse)`` of queries q0:q1 and keys k0:k1 (masked cells 0)."""
        layers, heads, nq, nk = self.shape
        if not (0 <= layer < layers and 0 <= q0 < q1 <= nq and 0 <= k0 < k1 <= nk):
            raise IndexError(f"block out of range: layer {layer}, queries {q0}:{q1}, keys {k0}:{k1} of {self.shape}")
        keys = self.keys[layer, :, k0:k1]
        groups = heads // keys.shape[0]
        if groups > 1:
            keys = np.repeat(keys, groups, axis=0)
        scores = np.matmul(self.queries[layer, :, q0:q1], keys.transpose(0, 2, 1)) * np.float32(self.scaling[layer])
        scores -= self.lse[layer, :, q0:q1, None]
        if self.causal:
            rows = np.arange(q0, q1)[:, None]
            cols = np.arange(k0, k1)[None, :]
            scores[:, cols > rows] = -np.inf
        return cast(np.ndarray, np.exp(scores, dtype=np.float32))

    def layer(self, layer: int) -> np.ndarray:
        """All exact weights of one layer, (heads, Q, K)."""
        return self.block(layer, 0, self.shape[2], 0, self.shape[3])

    def pooled(self, layer: int, pool: int) -> np.ndarray:
        return pool_matrix(self.tiles[layer], pool // self.tile)

    def thumbnails_at(self, size: int) -> np.ndarray:
        if self.thumbnails is not None and self.thumbnails.shape[-1] == size:
            return self.thumbnails
        return thumbnails_from_tiles(self.tiles, self.tile, self.shape[2], self.shape[3], size)

    @property
    def top_width(self) -> int:
        return int(self.top_values.shape[-1])

    def top_keys(self, layer: int, k: int | None) -> tuple[np.ndarray, np.ndarray]:
        kept = self.top_width if k is None else min(k, self.top_width)
        return self.top_values[layer, ..., :kept], self.top_index[layer, ..., :kept]

    def materialize(self) -> np.ndarray:
        layers, heads, q, k = self.shape
        size = layers * heads * q * k * 4
        if size > MATERIALIZE_LIMIT:
            from .errors import MemoryBudgetError

            raise MemoryBudgetError(
                f"All weights of this {q}-token trace would take {size / 1024 ** 3:.1f} GB; it keeps them "
                "reduced. Read exact values with trace.layer(kind, layer) or trace.block(kind, layer, q0, q1, k0, k1)."
            )
        return np.stack([self.layer(i) for i in range(layers)])
