"""Capture every layer's attention weights at about the cost of the model's own eager pass.

``output_attentions=True`` under eager attention allocates each layer's scores, scaled scores,
masked scores and probabilities afresh, keeps every layer's probabilities in the outputs, and a
capture then stacked them into one array (another copy of all of them). Here an attention function
registered with transformers (`attention_functions.register`) writes each layer's probabilities
once, straight into one float32 array (layers, heads, n, n) that becomes the trace's, by the
operations of the model's eager attention: ``softmax(q k^T * scaling + mask)``, in chunks of query
rows. A chunk computes only the keys its rows may attend (read from the mask: for a causal model
about half the matrix); eager's softmax gives exactly 0 to the others, and they stay 0 here. The
layer's output is ``weights @ value``, chunk by chunk (equal to eager's to float32 rounding: a
chunk sums over fewer keys). No key/value cache is built and only the last position's logits are
computed (`hf.py` asks so).

Two checks per layer:

- against the model's own eager attention (``eager_attention_forward`` of its module) on the first
  and last `CHECK_ROWS` query rows, to `CHECK_ATOL`: a layer whose eager attention computes otherwise
  (soft-capping, another order of operations, another dtype or device) is computed by that function
  instead and its weights copied into the array (tests/test_dense_capture.py);
- finite: ``d * max|q| * max|k| * scaling`` bounds every score, so below `SCORE_BOUND` with a
  finite mask every row is a softmax row (finite, >= 0, summing to 1) and the trace skips its
  value checks (`DenseAttention.softmax_rows`).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .attention_functions import register, switched_to
from .instrument import UNSUPPORTED, model_eager, repeat_kv

IMPLEMENTATION = "tx_magic_dense"
#: Query rows computed at a time.
CHUNK_ROWS = 256
#: Query rows at each end of a layer checked against the model's own eager attention, and the tolerance:
#: a different formula (soft-capping, another scaling) moves weights far more than float32 rounding does.
CHECK_ROWS = 4
CHECK_ATOL = 1e-6
#: Largest |score| for which ``score + mask`` cannot overflow float32 (its mask holds about -3.4e38).
SCORE_BOUND = 1e30

#: A chunk: first query row, end row, first key where the mask is not zero, keys to compute.
Span = tuple[int, int, int, int]

_ACTIVE: contextvars.ContextVar[DenseRecorder | None] = contextvars.ContextVar("tx_magic_dense", default=None)


@dataclass
class DenseRecorder:
    """One pass's weights, written into `array` as the model runs (see the module docstring)."""

    layers: int
    n: int
    array: np.ndarray | None = None
    calls: int = 0
    #: Why the pass could not be recorded (then the caller captures another way), or None.
    failed: str | None = None
    #: Every layer's scores were proven finite (see the module docstring).
    finite: bool = True
    #: Every layer's mask was exactly causal (each token attends itself and the tokens before).
    causal: bool = True
    #: Layers computed by the model's own eager function (their formula differs from the standard one).
    by_model: list[int] = field(default_factory=list)
    _modules: dict[int, int] = field(default_factory=dict)
    _spans: dict[tuple[int, tuple[int, ...]], tuple[list[Span], bool, bool]] = field(default_factory=dict)
    _scratch: Any = None

    @property
    def complete(self) -> bool:
        """Whether every layer was recorded."""
        return self.failed is None and self.array is not None and self.calls == self.layers

    def layer_of(self, module: Any, query: Any, key: Any) -> int | None:
        """The layer index this call writes, or None (and `failed` says why) when it cannot be recorded."""
        if self.failed is not None:
            return None
        layer = self._modules.setdefault(id(module), len(self._modules))
        self.calls += 1
        heads, q, k = int(query.shape[1]), int(query.shape[-2]), int(key.shape[-2])
        if self.array is None:
            self.array = np.zeros((self.layers, heads, self.n, self.n), dtype=np.float32)  # pages come on first write
        if layer != self.calls - 1 or layer >= self.layers:
            self.failed = f"attention module called out of layer order (call {self.calls}, layer {layer})"
        elif query.shape[0] != 1 or heads != self.array.shape[1] or q != self.n or k != self.n:
            self.failed = f"attention of shape {tuple(query.shape)} x {tuple(key.shape)}, not one text of {self.n}"
        return None if self.failed is not None else layer

    def scratch(self, size: int) -> Any:
        """A float32 buffer of at least `size` elements, the same one for every layer of the pass."""
        import torch

        if self._scratch is None or self._scratch.numel() < size:
            self._scratch = torch.empty(size, dtype=torch.float32)
        return self._scratch

    def spans(self, mask: Any, n: int) -> tuple[list[Span], bool, bool]:
        """Chunks (`Span`) for `mask`, whether it is finite and whether causal."""
        key = (0, ()) if mask is None else (int(mask.data_ptr()), tuple(mask.shape))
        if key not in self._spans:
            self._spans[key] = _spans(mask, n)
        return self._spans[key]


def _spans(mask: Any, n: int) -> tuple[list[Span], bool, bool]:
    import torch

    starts = range(0, n, CHUNK_ROWS)
    if mask is None:
        return [(r0, min(n, r0 + CHUNK_ROWS), n, n) for r0 in starts], True, False
    m = mask[0]                                              # (1 or H, q or 1, k)
    allowed = (m > torch.finfo(m.dtype).min / 2).any(0)       # (q or 1, k)
    allowed = allowed.expand(n, allowed.shape[-1])[:, :n]
    nonzero = (m != 0).any(0).expand(n, m.shape[-1])[:, :n]    # NaN and -inf are not zero
    has = allowed.any(-1)
    last = n - 1 - allowed.flip(-1).to(torch.uint8).argmax(-1)
    needed = torch.where(has, last + 1, torch.full_like(last, n))   # a row with no allowed key is uniform
    rows = torch.arange(n)
    causal = bool(torch.equal(allowed.sum(-1), rows + 1) and torch.equal(last, rows))
    spans = []
    for r0 in starts:
        r1 = min(n, r0 + CHUNK_ROWS)
        width = int(needed[r0:r1].max())
        cols = nonzero[r0:r1, :width].any(0)
        spans.append((r0, r1, int(cols.to(torch.uint8).argmax()) if bool(cols.any()) else width, width))
    return spans, bool(torch.isfinite(m).all()), causal


def _rows(mask: Any, r0: int, r1: int, k0: int, k1: int) -> Any:
    """The mask's part for query rows r0:r1 and keys k0:k1 (a mask of one row broadcasts)."""
    return (mask if mask.shape[-2] == 1 else mask[..., r0:r1, :])[0, :, :, k0:k1]


def _fast(recorder: DenseRecorder, layer: int, query: Any, key: Any, value: Any, mask: Any,
          scaling: float) -> Any:
    """Write the layer's weights into the recorder's array chunk by chunk; returns the layer's output.

    Each chunk is computed in one scratch buffer reused by every chunk and layer (contiguous: fresh
    temporaries cost page faults): ``q k^T * scaling``, the mask added only from the first key where it
    is not zero (for a causal mask: the chunk's diagonal block; adding 0 changes nothing), the softmax in
    place, then one copy into the trace's array; the output is the chunk's weights times the values,
    written in place. The scaling is the product's alpha only when it is a power of two (e.g. head size
    64), where it rounds exactly like eager's product-then-scale; otherwise a pass scales."""
    import torch

    groups = max(1, query.shape[1] // key.shape[1])
    keys, values = repeat_kv(key, groups)[0].transpose(-1, -2), repeat_kv(value, groups)[0]
    assert recorder.array is not None
    weights = torch.from_numpy(recorder.array[layer])          # (H, n, n): the trace's own memory
    heads, n = query.shape[1], query.shape[-2]
    out = query.new_empty((heads, n, value.shape[-1]))
    scratch = recorder.scratch(heads * min(n, CHUNK_ROWS) * n)
    spans, finite_mask, causal = recorder.spans(mask, n)
    exact = math.frexp(scaling)[0] == 0.5  # a power of two scales exactly inside the product
    for r0, r1, k0, width in spans:
        w = scratch[:heads * (r1 - r0) * width].view(heads, r1 - r0, width)
        torch.baddbmm(w, query[0, :, r0:r1], keys[:, :, :width], beta=0, alpha=scaling if exact else 1.0, out=w)
        if not exact:
            w.mul_(scaling)
        if k0 < width:
            w[:, :, k0:].add_(_rows(mask, r0, r1, k0, width))
        torch.softmax(w, -1, out=w)
        weights[:, r0:r1, :width] = w
        torch.matmul(w, values[:, :width], out=out[:, r0:r1])
    bound = query.shape[-1] * float(query.abs().amax()) * float(key.abs().amax()) * abs(scaling)
    recorder.finite &= finite_mask and bound < SCORE_BOUND
    recorder.causal &= causal
    return out.transpose(0, 1)[None].contiguous()


def _same_as_model(eager: Any, module: Any, query: Any, key: Any, value: Any, mask: Any, scaling: float | None,
                   weights: np.ndarray, kwargs: dict[str, Any]) -> bool:
    """Whether the model's own eager attention gives these weights (to CHECK_ATOL) on the first and last
    CHECK_ROWS rows. (Bit for bit with the BLAS libraries tested; a matrix product of fewer than 4 rows
    may round differently from a larger one, so the check never takes fewer.)"""
    import torch

    n = query.shape[-2]
    rows = torch.tensor(sorted({*range(min(n, CHECK_ROWS)), *range(max(0, n - CHECK_ROWS), n)}))
    part = None if mask is None else (mask if mask.shape[-2] == 1 else mask[..., rows, :])
    try:
        _, ref = eager(module, query[:, :, rows], key, value, part, dropout=0.0, scaling=scaling, **kwargs)
    except Exception:  # noqa: BLE001 - an eager function that cannot run on two rows: use it on all of them
        return False
    if ref is None or tuple(ref.shape[1:]) != (weights.shape[0], len(rows), weights.shape[-1]):
        return False
    mine = torch.from_numpy(weights[:, rows.numpy()])
    return bool(torch.allclose(ref[0].to(torch.float32), mine, rtol=0.0, atol=CHECK_ATOL, equal_nan=True))


def _dense_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
                     scaling: float | None = None, **kwargs: Any) -> tuple[Any, None]:
    """tx_magic's dense capture: the layer's output, its weights written into the active recorder's array."""
    import torch

    eager = model_eager(module)
    recorder = _ACTIVE.get()
    layer = None if recorder is None else recorder.layer_of(module, query, key)
    if recorder is None or layer is None:
        return eager(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)[0], None
    assert recorder.array is not None
    standard = (query.dtype == torch.float32 and query.device.type == "cpu" and not getattr(module, "training", False)
                and not any(kwargs.get(name) is not None for name in UNSUPPORTED)
                and (attention_mask is None or attention_mask.dtype == torch.float32))
    if standard:
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        out = _fast(recorder, layer, query, key, value, attention_mask, scale)
        if _same_as_model(eager, module, query, key, value, attention_mask, scaling, recorder.array[layer], kwargs):
            return out, None
    out, weights = eager(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    if weights is None:
        recorder.failed = f"{type(module).__name__}'s eager attention returned no weights"
        return out, None
    torch.from_numpy(recorder.array[layer]).copy_(weights[0])
    recorder.by_model.append(layer)
    recorder.finite = False
    recorder.causal = False
    return out, None


@contextlib.contextmanager
def recording(model: Any, layers: int, n: int) -> Iterator[DenseRecorder]:
    """Passes of `model` inside the block write each layer's weights into the recorder (`layers` of them,
    one text of `n` tokens); the model's attention implementation and mode are put back after."""
    register(IMPLEMENTATION, _dense_attention, mask="eager")
    with switched_to(model, IMPLEMENTATION, _ACTIVE, DenseRecorder(layers=layers, n=n)) as recorder:
        yield recorder
