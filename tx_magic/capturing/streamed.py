"""Capture long inputs without holding layers x heads x n^2 weights.

A full float32 capture of SmolLM2 (30 layers x 9 heads) at 8192 tokens would be ~72 GB. Here
an attention function registered with transformers computes each layer's weights in chunks of
query rows, the layer's output from them (weights x values: the model's attention is not run a
second time) and reduces them as it goes:

- an overview: each head's matrix max-pooled into tiles of ``tile`` x ``tile`` tokens (max,
  not mean, so a sharp diagonal or a sink column stays visible at any zoom-out);
- a thumbnail: the same max over ``thumbnail_size`` x ``thumbnail_size`` tiles split as evenly as
  ``numpy.array_split`` does (what the widget's grid of heads draws,
  `tx_magic.core.attention.AttentionStore.thumbnails_at`);
- the ``top_k`` strongest keys of every query row (for the arc view);
- per-row statistics (entropy, max, first/previous/self share, distance, ...);
- the row's log-sum-exp plus the layer's queries and keys, so any block of exact weights is
  recomputed on demand: ``p[q, k] = exp(q.k * scale - lse[q])`` (masked cells are 0).

Only self-attention stacks (encoder-only, decoder-only) are captured this way; models whose
attention adds terms sdpa does not take (soft-capping, sinks) are refused with a message.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.attention import ROW_STATS, ReducedAttention
from ..core.tiles import THUMBNAIL_SIZE, tile_starts
from ..core.tokens import induction_target_rows
from .attention_functions import register, switched_to

IMPLEMENTATION = "tx_magic_streamed"
#: Stands for -inf on masked cells: exp() gives 0 exactly, and 0 * MASKED is 0, not NaN.
MASKED = -1e30
#: Most query rows reduced at a time (a multiple of any tile size used).
CHUNK_ROWS = 256
#: Bytes of one chunk's weights (heads x rows x keys float32); the reduction holds two such buffers.
CHUNK_BYTES = 256 * 1024 ** 2

_RECORDER: contextvars.ContextVar[_Recorder | None] = contextvars.ContextVar("tx_magic_recorder", default=None)


def chunk_rows(n: int, heads: int, tile: int) -> int:
    """Query rows per chunk: at most CHUNK_ROWS, a multiple of `tile`, and heads x rows x n x 4 bytes within
    CHUNK_BYTES where a tile allows (at 32768 tokens and 16 heads: 128 rows, 256 MB)."""
    fit = CHUNK_BYTES // max(1, heads * n * 4)
    return max(tile, min(CHUNK_ROWS, fit) // tile * tile)


@dataclass
class _Recorder:
    """Collects one forward pass's reductions, layer by layer, in call order."""

    n: int
    tile: int
    top_k: int
    token_ids: list[int]
    on_layer: Callable[[], None] | None = None
    thumbnail_size: int = THUMBNAIL_SIZE
    layers: list[dict[str, Any]] = field(default_factory=list)
    causal: bool | None = None
    _buffers: tuple[Any, Any] | None = None

    def buffers(self, size: int) -> tuple[Any, Any]:
        """Two flat float32 buffers of at least `size` elements, reused by every chunk of every layer."""
        import torch

        if self._buffers is None or self._buffers[0].numel() < size:
            self._buffers = None
            self._buffers = (torch.empty(size), torch.empty(size))
        return self._buffers

    def record(self, module: Any, query: Any, key: Any, value: Any, attention_mask: Any, scaling: float | None,
               is_causal: bool | None) -> Any:
        """Reduce one layer's weights and return its attention output (1, n, H, d), as sdpa would: the
        weights of each chunk, computed anyway, are multiplied by the values (the model's own attention
        is not run a second time)."""
        import torch

        if key.shape[-2] != query.shape[-2]:
            raise NotImplementedError("keys of another length than the queries (a key/value cache)")
        q = _float32_copy(query[0])            # (H, n, d), kept
        k = _float32_copy(key[0])              # (Hkv, n, d), kept
        vals = value[0].detach().float()       # (Hkv, n, d), not kept
        heads, n, d = q.shape
        kv_heads = k.shape[0]
        groups = heads // kv_heads
        scale = float(scaling) if scaling is not None else 1.0 / math.sqrt(d)
        exact = math.frexp(scale)[0] == 0.5
        if is_causal is None:
            is_causal = attention_mask is None and n > 1 and bool(getattr(module, "is_causal", True))
        mask = _boolean_mask(attention_mask, n)
        if mask is not None and not is_causal and bool(torch.equal(mask, torch.tril(torch.ones_like(mask)))):
            is_causal, mask = True, None
        if mask is not None:
            raise NotImplementedError("a padding or windowed attention mask; capture a single unpadded text")
        self.causal = bool(is_causal)
        t = self.tile
        tiles_n = -(-n // t)
        tiles = torch.zeros(heads, tiles_n, tiles_n)
        top_v = torch.zeros(heads, n, min(self.top_k, n))
        top_i = torch.zeros(heads, n, min(self.top_k, n), dtype=torch.int32)
        lse_all = torch.zeros(heads, n)
        output = torch.empty(heads, n, vals.shape[-1])
        stats = {name: torch.zeros(heads, n) for name in ROW_STATS}
        thumbs = _Thumbnails(heads, n, self.thumbnail_size)
        targets = induction_target_rows(self.token_ids, n)
        step = chunk_rows(n, heads, t)
        scores, probs = self.buffers(heads * min(step, n) * n)
        keys_t = k.transpose(-1, -2)                                     # (Hkv, d, n)
        above = torch.ones(step, step, dtype=torch.bool).triu_(1)        # a diagonal block's masked cells
        key_pos = torch.arange(n, dtype=torch.float32)
        for r0 in range(0, n, step):
            r1 = min(n, r0 + step)
            c = r1 - r0
            width = r1 if is_causal else n       # causal rows never reach keys past their own
            rows = torch.arange(r0, r1)
            x = scores[:heads * c * width].view(heads, c, width)
            p = probs[:heads * c * width].view(heads, c, width)
            # Query head h reads key head h // groups: one product per key head, no repeated keys. The
            # scale is the product's alpha when it is a power of two (it then rounds exactly as q.k followed
            # by the scale, what `ReducedAttention.block` computes); otherwise a pass scales.
            torch.baddbmm(x.view(kv_heads, groups * c, width), q[:, r0:r1].reshape(kv_heads, groups * c, d),
                          keys_t[:, :, :width], beta=0, alpha=scale if exact else 1.0,
                          out=x.view(kv_heads, groups * c, width))
            if not exact:
                x.mul_(scale)
            if is_causal:  # only the diagonal block has keys past the row; finite, so that 0 * x stays 0
                x[:, :, r0:r1].masked_fill_(above[:c, :c], MASKED)
            torch.softmax(x, -1, out=p)            # the weights (one fused pass per row)
            blocks = _block_max(p, t)                                     # (H, c, ceil(width / t))
            kept = min(top_v.shape[-1], width)
            v, i = _top_keys(p, blocks, kept, t)
            top_v[:, r0:r1, :kept], top_i[:, r0:r1, :kept] = v, i.to(torch.int32)
            row_max = x.gather(-1, i[..., :1])     # the row's largest score, whose weight is exp(0) / total
            lse = row_max - v[..., :1].log()
            lse_all[:, r0:r1] = lse.squeeze(-1)
            _pool_rows_into(tiles, blocks, r0, t)
            thumbs.add(_thumbnail_columns(p, blocks, thumbs.starts, t), r0)
            out = torch.matmul(p.view(kv_heads, groups * c, width), vals[:, :width])   # the layer's output
            output[:, r0:r1] = out.view(heads, c, -1)
            mean_key = torch.matmul(p, key_pos[:width])                  # sum_k p k
            # -sum p log p = lse - sum p x, as log p = x - lse; large scores are shifted by the row's
            # largest first, so that the sum does not cancel (x is spent).
            large = float(row_max.abs().max()) > 16
            if large:
                x.sub_(row_max)
            entropy = (lse - (row_max if large else 0.0) - x.mul_(p).sum(-1, keepdim=True)).squeeze(-1)
            _row_stats_into(stats, p, entropy, v[..., 0], mean_key, rows, is_causal, targets[r0:r1])
            del x, p
        self.layers.append({
            "tiles": tiles.numpy(), "top_values": top_v.numpy(), "top_index": top_i.numpy(),
            "lse": lse_all.numpy(), "queries": q.numpy(), "keys": k.numpy(), "scaling": scale,
            "stats": {name: s.numpy() for name, s in stats.items()}, "thumbnails": thumbs.values,
        })
        if self.on_layer is not None:
            self.on_layer()
        return output.transpose(0, 1).unsqueeze(0).to(query.dtype).contiguous()

    def result(self) -> ReducedAttention:
        """The layers' reductions as one store; each layer's copy is freed as it is moved in (no second copy)."""
        if not self.layers:
            raise RuntimeError("the model ran no attention through tx_magic's recorder")
        heads = self.layers[0]["queries"].shape[0]
        layers = self.layers

        def stack(get: Callable[[dict[str, Any]], np.ndarray], drop: Callable[[dict[str, Any]], None]) -> np.ndarray:
            out = np.empty((len(layers), *get(layers[0]).shape), dtype=get(layers[0]).dtype)
            for i, layer in enumerate(layers):
                out[i] = get(layer)
                drop(layer)
            return out

        def field_of(name: str) -> np.ndarray:
            return stack(lambda layer: layer[name], lambda layer: layer.__setitem__(name, None))

        def stat_of(name: str) -> np.ndarray:
            return stack(lambda layer: layer["stats"][name], lambda layer: layer["stats"].__setitem__(name, None))

        reduced = ReducedAttention(
            shape=(len(layers), heads, self.n, self.n), tile=self.tile,
            tiles=field_of("tiles"), top_values=field_of("top_values"), top_index=field_of("top_index"),
            row_stats={name: stat_of(name) for name in ROW_STATS},
            lse=field_of("lse"), queries=field_of("queries"), keys=field_of("keys"),
            scaling=np.array([layer["scaling"] for layer in layers], dtype=np.float32),
            causal=bool(self.causal), thumbnails=field_of("thumbnails"),
        )
        self.layers = []
        return reduced


def _float32_copy(x: Any) -> Any:
    """A contiguous float32 copy of `x` (the model's own tensor is never kept or changed)."""
    import torch

    out = torch.empty(x.shape, dtype=torch.float32)
    out.copy_(x.detach())
    return out


def _recording_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                         dropout: float = 0.0, scaling: float | None = None, is_causal: bool | None = None,
                         **kwargs: Any) -> tuple[Any, None]:
    """The active recorder reduces the weights and computes the output from them; without one (or with
    dropout), sdpa. The weights are never returned."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    for unsupported in ("softcap", "s_aux", "sinks", "position_bias"):
        if kwargs.get(unsupported) is not None:
            raise NotImplementedError(f"attention with {unsupported}")
    recorder = _RECORDER.get()
    if recorder is None or dropout:
        output, _ = sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                           scaling=scaling, is_causal=is_causal, **kwargs)
        return output, None
    return recorder.record(module, query, key, value, attention_mask, scaling, is_causal), None


@contextlib.contextmanager
def recording(model: Any, n: int, *, tile: int, top_k: int, token_ids: list[int],
              on_layer: Callable[[], None] | None = None) -> Iterator[_Recorder]:
    """Run `model` under the recording attention; the model is put back as it was afterwards."""
    register(IMPLEMENTATION, _recording_attention, mask="sdpa")
    recorder = _Recorder(n=n, tile=tile, top_k=top_k, token_ids=token_ids, on_layer=on_layer)
    try:
        with switched_to(model, IMPLEMENTATION, _RECORDER, recorder):
            yield recorder
    finally:
        recorder._buffers = None  # the chunk buffers go with the pass


def tile_for(n: int, max_tiles: int) -> int:
    """Tokens per tile side so that the overview has at most `max_tiles` tiles a side; at most CHUNK_ROWS."""
    tile = 1
    while -(-n // tile) > max_tiles:
        tile *= 2
    return min(tile, CHUNK_ROWS)


class _Thumbnails:
    """The max of each of T x T tiles (rows and columns split as numpy.array_split does), chunk by chunk."""

    def __init__(self, heads: int, n: int, size: int) -> None:
        size = max(1, min(size, n))
        i = np.arange(size)
        self.starts = tile_starts(n, size)
        self.row_tile = np.repeat(i, np.diff(np.append(self.starts, n)))
        self.values = np.zeros((heads, size, size), dtype=np.float32)

    def add(self, by_col: np.ndarray, r0: int) -> None:
        """Fold in rows r0.. given each row's max over each column range (H, c, T'); ranges past T' are 0."""
        cols = self.starts[:by_col.shape[-1]]
        tiles = self.row_tile[r0:r0 + by_col.shape[1]]
        first = np.flatnonzero(np.r_[True, tiles[1:] != tiles[:-1]])
        by_tile = np.maximum.reduceat(by_col, first, axis=1)
        rows = tiles[first]
        self.values[:, rows, :len(cols)] = np.maximum(self.values[:, rows, :len(cols)], by_tile)


def _boolean_mask(attention_mask: Any, n: int) -> Any:
    """The sdpa mask as bool (n, n) True = attend, or None when there is none."""
    import torch

    if attention_mask is None:
        return None
    m = attention_mask[0, 0] if attention_mask.ndim == 4 else attention_mask
    if m.dtype != torch.bool:
        m = m > torch.finfo(m.dtype).min / 2
    m = m[-n:, -n:]
    return None if bool(m.all()) else m


def _block_max(x: Any, t: int) -> Any:
    """Max of each row's runs of `t` keys (the last run may be shorter): (H, c, ceil(width / t)), a new tensor."""
    import torch

    width = x.shape[-1]
    whole = width - width % t
    blocks = x[..., :whole].unflatten(-1, (whole // t, t)).amax(-1)
    if whole < width:
        blocks = torch.cat([blocks, x[..., whole:].amax(-1, keepdim=True)], dim=-1)
    return blocks


#: Runs of runs searched first for the top keys, when a row has more than k of those.
TOP_FAN = 4


def _top_keys(x: Any, blocks: Any, k: int, t: int) -> tuple[Any, Any]:
    """The k largest values of each row of x and their keys, strongest first.

    They lie in the k runs of t keys with the largest maxima (a run outside those has k runs at least
    as large before it), so only k x t candidates per row are sorted, not the whole row.
    """
    import torch

    if t == 1 or blocks.shape[-1] <= k:
        return torch.topk(x, k, dim=-1)
    return _best_in_runs(x, _top_runs(blocks, k), k, t)


def _top_runs(blocks: Any, k: int) -> Any:
    """The k runs of each row with the largest maxima (H, c, k), in no order: where there are many, found
    within the k best groups of TOP_FAN runs, by the argument of `_top_keys`."""
    import torch

    groups = _block_max(blocks, TOP_FAN)
    if groups.shape[-1] <= k:
        return torch.topk(blocks, k, dim=-1, sorted=False).indices
    return _best_in_runs(blocks, torch.topk(groups, k, dim=-1, sorted=False).indices, k, TOP_FAN)[1]


def _best_in_runs(x: Any, runs: Any, k: int, t: int) -> tuple[Any, Any]:
    """The k largest values of each row of x within its given runs of t keys (H, c, r), and their keys."""
    import torch

    width = x.shape[-1]
    cols = (runs[..., None] * t + torch.arange(t)).flatten(-2)           # (H, c, r * t)
    if width % t:                                                        # a short last run
        values = x.gather(-1, cols.clamp(max=width - 1)).masked_fill_(cols >= width, float("-inf"))
    else:
        values = x.gather(-1, cols)
    v, j = torch.topk(values, k, dim=-1)
    return v, cols.gather(-1, j)


def _pool_rows_into(tiles: Any, blocks: Any, r0: int, t: int) -> None:
    """Fold rows r0.. of the per-row tile maxima `blocks` (H, c, T') into the tile grid (H, T, T)."""
    import torch

    _, c, tcols = blocks.shape
    whole = c - c % t
    pooled = blocks[:, :whole].unflatten(1, (whole // t, t)).amax(2)     # (H, c/t, T')
    if whole < c:                                                        # a partial last tile of rows
        pooled = torch.cat([pooled, blocks[:, whole:].amax(1, keepdim=True)], dim=1)
    first = r0 // t
    view = tiles[:, first:first + pooled.shape[1], :tcols]
    torch.maximum(view, pooled, out=view)


def _thumbnail_columns(p: Any, blocks: Any, starts: np.ndarray, t: int) -> np.ndarray:
    """Each row's max weight within each thumbnail column range that starts before the chunk's width:
    (H, c, T'), from the runs' maxima where the ranges start on runs, else from the weights."""
    cols = starts[starts < p.shape[-1]]
    if not np.any(cols % t):
        return np.maximum.reduceat(blocks.numpy(), cols // t, axis=2)
    return np.maximum.reduceat(p.numpy(), cols, axis=2)


def _row_stats_into(stats: dict[str, Any], p: Any, entropy: Any, row_max: Any, mean_key: Any, rows: Any,
                    causal: bool, targets: np.ndarray) -> None:
    """Per-row statistics of a chunk p (H, c, w) of weights for query rows `rows`, given each row's
    `entropy`, largest weight and `mean_key` (sum_k p k), each (H, c).

    Entropy is exact (-sum p log p); head_stats' log(p + 1e-10) differs by at most n * 1e-10.
    """
    import torch

    heads, c, width = p.shape
    r0, r1 = int(rows[0]), int(rows[-1]) + 1

    def at(keys: Any) -> Any:
        """Weight of key keys[j] for row j (H, c); 0 where the key is out of range."""
        ok = (keys >= 0) & (keys < width)
        picked = p.gather(-1, keys.clamp(0, width - 1).expand(heads, c)[..., None]).squeeze(-1)
        return picked.masked_fill_(~ok, 0.0)

    stats["entropy"][:, r0:r1] = entropy
    stats["max_weight"][:, r0:r1] = row_max
    if causal:                                             # every key is at or before the row
        stats["distance"][:, r0:r1] = rows.to(p.dtype) - mean_key
    else:
        offsets = (torch.arange(width, dtype=p.dtype)[None, :] - rows[:, None].to(p.dtype)).abs()
        stats["distance"][:, r0:r1] = (p * offsets).sum(-1)
    stats["first"][:, r0:r1] = p[..., 0]
    stats["self"][:, r0:r1] = at(rows)
    stats["local"][:, r0:r1] = sum(at(rows + offset) for offset in range(-2, 3))   # within 2 positions
    stats["previous"][:, r0:r1] = at(rows - 1)
    allowed = (rows + 1).to(p.dtype) if causal else torch.full((c,), float(width))
    stats["norm_entropy"][:, r0:r1] = torch.where(allowed >= 2, entropy / torch.log(allowed.clamp(min=2)),
                                                  torch.full_like(entropy, float("nan")))
    tgt = torch.from_numpy(targets)
    stats["induction"][:, r0:r1] = at(tgt).masked_fill_((tgt < 0).expand(heads, c), float("nan"))
