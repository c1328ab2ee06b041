"""Capture long inputs without holding layers x heads x n^2 weights.

A full float32 capture of SmolLM2 (30 layers x 9 heads) at 8192 tokens would be ~72 GB. Here
an attention function registered with transformers computes each layer's output with sdpa,
as the model would, and reduces that layer's weights as it goes, in chunks of query rows:

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
#: Query rows reduced at a time (a multiple of any tile size used).
CHUNK_ROWS = 256

_RECORDER: contextvars.ContextVar[_Recorder | None] = contextvars.ContextVar("tx_magic_recorder", default=None)


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

    def record(self, module: Any, query: Any, key: Any, attention_mask: Any, scaling: float | None,
               is_causal: bool | None) -> None:
        import torch

        q = query[0].detach().float()          # (H, n, d)
        k = key[0].detach().float()            # (Hkv, n, d)
        heads, n, d = q.shape
        scale = float(scaling) if scaling is not None else 1.0 / math.sqrt(d)
        if is_causal is None:
            is_causal = attention_mask is None and n > 1 and bool(getattr(module, "is_causal", True))
        mask = _boolean_mask(attention_mask, n)
        if mask is not None and not is_causal and bool(torch.equal(mask, torch.tril(torch.ones_like(mask)))):
            is_causal, mask = True, None
        if mask is not None:
            raise NotImplementedError("a padding or windowed attention mask; capture a single unpadded text")
        self.causal = bool(is_causal)
        kk = _repeat_kv(k, heads)
        t = self.tile
        tiles_n = -(-n // t)
        tiles = torch.zeros(heads, tiles_n, tiles_n)
        top_v = torch.zeros(heads, n, min(self.top_k, n))
        top_i = torch.zeros(heads, n, min(self.top_k, n), dtype=torch.int32)
        lse_all = torch.zeros(heads, n)
        stats = {name: torch.zeros(heads, n) for name in ROW_STATS}
        thumbs = _Thumbnails(heads, n, self.thumbnail_size)
        targets = induction_target_rows(self.token_ids, n)
        for r0 in range(0, n, CHUNK_ROWS):
            r1 = min(n, r0 + CHUNK_ROWS)
            width = r1 if is_causal else n       # causal rows never reach keys past their own
            rows = torch.arange(r0, r1)
            cols = torch.arange(width)
            x = torch.matmul(q[:, r0:r1], kk[:, :width].transpose(-1, -2)).mul_(scale)
            if is_causal:  # finite, so that 0 * x stays 0 below; exp gives exactly 0 all the same
                x.masked_fill_(cols[None, :] > rows[:, None], MASKED)
            row_max = x.amax(-1, keepdim=True)
            x.sub_(row_max)
            p = torch.exp(x)
            total = p.sum(-1, keepdim=True)
            p.div_(total)                          # (H, c, width): exactly softmax
            log_total = total.log_()
            lse_all[:, r0:r1] = (row_max + log_total).squeeze(-1)
            entropy = log_total.squeeze(-1) - (p * x).sum(-1)   # -sum p log p, as log p = x - log total
            _pool_into(tiles, p, r0, t)
            thumbs.add(p.cpu().numpy(), r0)
            kept = min(top_v.shape[-1], width)
            v, i = torch.topk(p, kept, dim=-1)
            top_v[:, r0:r1, :kept], top_i[:, r0:r1, :kept] = v, i.to(torch.int32)
            _row_stats_into(stats, p, entropy, v[..., 0], rows, is_causal, targets[r0:r1])
            del x, p
        self.layers.append({
            "tiles": tiles.numpy(), "top_values": top_v.numpy(), "top_index": top_i.numpy(),
            "lse": lse_all.numpy(), "queries": q.numpy().copy(), "keys": k.numpy().copy(), "scaling": scale,
            "stats": {name: s.numpy() for name, s in stats.items()}, "thumbnails": thumbs.values,
        })
        if self.on_layer is not None:
            self.on_layer()

    def result(self) -> ReducedAttention:
        if not self.layers:
            raise RuntimeError("the model ran no attention through tx_magic's recorder")
        heads = self.layers[0]["queries"].shape[0]

        def stack(name: str) -> np.ndarray:
            return np.stack([layer[name] for layer in self.layers])

        return ReducedAttention(
            shape=(len(self.layers), heads, self.n, self.n), tile=self.tile,
            tiles=stack("tiles"), top_values=stack("top_values"), top_index=stack("top_index"),
            row_stats={name: np.stack([layer["stats"][name] for layer in self.layers]) for name in ROW_STATS},
            lse=stack("lse"), queries=stack("queries"), keys=stack("keys"),
            scaling=np.array([layer["scaling"] for layer in self.layers], dtype=np.float32),
            causal=bool(self.causal), thumbnails=stack("thumbnails"),
        )


def _recording_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                         dropout: float = 0.0, scaling: float | None = None, is_causal: bool | None = None,
                         **kwargs: Any) -> tuple[Any, None]:
    """sdpa for the output; the weights are reduced by the active recorder, never returned."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    for unsupported in ("softcap", "s_aux", "sinks", "position_bias"):
        if kwargs.get(unsupported) is not None:
            raise NotImplementedError(f"attention with {unsupported}")
    output, _ = sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                       scaling=scaling, is_causal=is_causal, **kwargs)
    recorder = _RECORDER.get()
    if recorder is not None:
        recorder.record(module, query, key, attention_mask, scaling, is_causal)
    return output, None


@contextlib.contextmanager
def recording(model: Any, n: int, *, tile: int, top_k: int, token_ids: list[int],
              on_layer: Callable[[], None] | None = None) -> Iterator[_Recorder]:
    """Run `model` under the recording attention; the model is put back as it was afterwards."""
    register(IMPLEMENTATION, _recording_attention, mask="sdpa")
    recorder = _Recorder(n=n, tile=tile, top_k=top_k, token_ids=token_ids, on_layer=on_layer)
    with switched_to(model, IMPLEMENTATION, _RECORDER, recorder):
        yield recorder


def tile_for(n: int, max_tiles: int) -> int:
    """Tokens per tile side so that the overview has at most `max_tiles` tiles a side; divides CHUNK_ROWS."""
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

    def add(self, p: np.ndarray, r0: int) -> None:
        """Fold in rows r0.. of p (H, c, width); keys past `width` are masked (0)."""
        cols = self.starts[self.starts < p.shape[-1]]
        by_col = np.maximum.reduceat(p, cols, axis=2)
        tiles = self.row_tile[r0:r0 + p.shape[1]]
        first = np.flatnonzero(np.r_[True, tiles[1:] != tiles[:-1]])
        by_tile = np.maximum.reduceat(by_col, first, axis=1)
        rows = tiles[first]
        self.values[:, rows, :len(cols)] = np.maximum(self.values[:, rows, :len(cols)], by_tile)


def _repeat_kv(k: Any, heads: int) -> Any:
    groups = heads // k.shape[0]
    return k if groups == 1 else k.repeat_interleave(groups, dim=0)


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


def _pool_into(tiles: Any, p: Any, r0: int, t: int) -> None:
    """Max-pool rows r0.. of p (H, c, n) into the tile grid (H, T, T).

    Rows first (a middle axis: contiguous inner loops), then columns of the t-times smaller result:
    reducing the short innermost axis of the whole chunk first is several times slower.
    """
    import torch

    x = p.cpu().numpy()                                         # numpy's middle-axis max is ~3x torch's
    heads, c, width = x.shape
    if c % t:
        x = np.concatenate([x, np.zeros((heads, t - c % t, width), x.dtype)], axis=1)
    rows = x.reshape(heads, -1, t, width).max(2)                # (H, c/t, n)
    if width % t:
        rows = np.concatenate([rows, np.zeros((*rows.shape[:2], t - width % t), rows.dtype)], axis=2)
    pooled = torch.from_numpy(rows.reshape(heads, rows.shape[1], -1, t).max(-1))   # (H, c/t, T)
    first, tcols = r0 // t, pooled.shape[-1]
    view = tiles[:, first:first + pooled.shape[1], :tcols]
    tiles[:, first:first + pooled.shape[1], :tcols] = torch.maximum(view, pooled)


def _row_stats_into(stats: dict[str, Any], p: Any, entropy: Any, row_max: Any, rows: Any, causal: bool,
                    targets: np.ndarray) -> None:
    """Per-row statistics of a chunk p (H, c, w) for query rows `rows`, given each row's entropy.

    Entropy is exact (-sum p log p); head_stats' log(p + 1e-10) differs by at most n * 1e-10.
    """
    import torch

    heads, c, width = p.shape
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    local = rows - r0
    stats["entropy"][:, r0:r1] = entropy
    stats["max_weight"][:, r0:r1] = row_max
    cols = torch.arange(width, dtype=p.dtype)
    mean_key = torch.matmul(p, cols)                       # sum_k p k
    if causal:                                             # every key is at or before the row
        stats["distance"][:, r0:r1] = rows.to(p.dtype) - mean_key
    else:
        stats["distance"][:, r0:r1] = (p * (cols[None, :] - rows[:, None].to(p.dtype)).abs()).sum(-1)
    stats["first"][:, r0:r1] = p[..., 0]
    stats["self"][:, r0:r1] = p[:, local, rows]
    band = torch.zeros(heads, c)
    for offset in range(-2, 3):                            # weight within 2 positions
        keys = rows + offset
        ok = (keys >= 0) & (keys < width)
        band[:, ok] += p[:, local[ok], keys[ok]]
    stats["local"][:, r0:r1] = band
    prev = torch.zeros(heads, c)
    has_prev = rows > 0
    prev[:, has_prev] = p[:, local[has_prev], rows[has_prev] - 1]
    stats["previous"][:, r0:r1] = prev
    allowed = (rows + 1).to(p.dtype) if causal else torch.full((c,), float(width))
    stats["norm_entropy"][:, r0:r1] = torch.where(allowed >= 2, entropy / torch.log(allowed.clamp(min=2)),
                                                  torch.full_like(entropy, float("nan")))
    tgt = torch.from_numpy(targets)
    has = tgt >= 0
    induction = torch.full((heads, c), float("nan"))
    induction[:, has] = p[:, local[has], tgt[has]]
    stats["induction"][:, r0:r1] = induction
