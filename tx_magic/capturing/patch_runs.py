"""The model runs behind activation patching (`tx_magic.analysis.patching` says what they mean).

- `PatchRuns.record`: one run of an input with every head's output kept (and what the metric reads);
- `PatchRuns.exact`: many runs of the corrupted input, each taking some heads' outputs (at some
  positions) from the clean run, batched: B copies of the corrupted input in one forward, each row
  with its own patch, in chunks of about CHUNK_TOKENS tokens. Layers below a chunk's first patched
  layer compute exactly what the corrupted run computed, so (self-attention stacks whose layers are
  one ModuleList) they are skipped: the corrupted run's output of each is handed on instead;
- `PatchRuns.gradient`: one forward and backward of the corrupted input, giving the metric's gradient
  with respect to every head's output (attribution patching), with autograd but no parameter gradients.

Every run goes through tx_magic's instrumented eager attention; the model is put back afterwards
(attention implementation, mode, requires_grad flags, forwards), after errors and Ctrl-C too.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import OptionError, model_failures
from .hf import Inputs
from .interventions import Layout, PatchOutputs, Probe, RecordOutputs, Site, intervening
from .model_state import frozen_parameters, hook_handles, replaced_forwards
from .models import input_device

#: Rows x tokens of one batched forward of exact patching: bounds its memory (512 ran fastest here,
#: benchmarks/bench_patching.py).
CHUNK_TOKENS = 512
#: A metric: what the model's run reads out (B, X) -> one value per row (B,).
Metric = Callable[[Any], Any]


@dataclass(frozen=True)
class RowPatch:
    """What one patched run takes from the clean run: at `site`, the output of `heads` (None: all) at
    `positions` (None: all)."""

    site: Site
    heads: tuple[int, ...] | None = None
    positions: tuple[int, ...] | None = None


@dataclass
class Recorded:
    """One recorded run: each site's head outputs (1, q, H, d), the attention modules, the readout (1, X)."""

    outputs: dict[Site, Any]
    modules: dict[Site, Any]
    readout: Any
    #: "logits" (the last position's; an encoder-decoder's decoder) or "embedding" (mean-pooled output).
    reads: str
    #: Each layer block's output, for runs that skip the layers below their first patch (None: not kept).
    blocks: list[Any] | None = None


def readout(outputs: Any) -> tuple[Any, str]:
    """What a metric reads from a run: the last position's logits (B, V), or for a model without an LM head
    the mean-pooled output embedding (B, d)."""
    logits = getattr(outputs, "logits", None)
    if logits is not None:
        return logits[:, -1].float(), "logits"
    hidden = getattr(outputs, "last_hidden_state", None)
    if hidden is None:
        raise OptionError("the model returned neither logits nor a last hidden state: pass metric=... on its output")
    return hidden.float().mean(dim=1), "embedding"


def _options(model: Any) -> dict[str, Any]:
    """No cache; only the last position's logits where the model can."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return {}
    out: dict[str, Any] = {"return_dict": True}
    if "use_cache" in params:
        out["use_cache"] = False
    if "logits_to_keep" in params:
        out["logits_to_keep"] = 1
    return out


def _expanded(value: Any, rows: int) -> Any:
    """A block's output of one row, for `rows` rows (tensors with batch 1 repeated; tuples member-wise)."""
    import torch

    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return value.expand(rows, *value.shape[1:]).contiguous() if value.dim() and value.shape[0] == 1 else value
    if type(value) is tuple:
        return tuple(_expanded(v, rows) for v in value)
    raise TypeError(type(value).__name__)


def layer_blocks(model: Any, modules: Mapping[Site, Any], layers: int) -> list[Any] | None:
    """The layer modules of a self-attention stack (the ModuleList items holding layer l's attention, in
    order), or None when the model is not laid out so."""
    import torch

    named = dict(model.named_modules())
    name_of = {id(m): n for n, m in named.items()}
    blocks: list[Any] = []
    for layer in range(layers):
        module = modules.get(("self", layer))
        parts = name_of.get(id(module), "").split(".") if module is not None else []
        block = None
        for i in range(1, len(parts)):
            parent = named.get(".".join(parts[:i - 1]))
            if parts[i - 1].isdigit() and isinstance(parent, torch.nn.ModuleList) and len(parent) == layers \
                    and parent[layer] is named.get(".".join(parts[:i])):
                block = named[".".join(parts[:i])]
                break
        if block is None or block in blocks:
            return None
        blocks.append(block)
    return blocks


class PatchRuns:
    """The runs of one patching question: `model` on a clean and a corrupted input of the same length."""

    def __init__(self, model: Any, layout: Layout, clean: Inputs, corrupted: Inputs) -> None:
        self.model, self.layout = model, layout
        self.clean, self.corrupted = clean.batch, corrupted.batch
        self.tokens = len(clean.batch["input_ids"])
        self.options = _options(model)
        self.blocks: list[Any] | None = None

    def _batch(self, inputs: Mapping[str, Any], rows: int) -> dict[str, Any]:
        import torch

        device = input_device(self.model)
        return {k: torch.tensor([v] * rows, device=device) for k, v in inputs.items()}

    def _run(self, inputs: Mapping[str, Any], rows: int) -> Any:
        return self.model(**self._batch(inputs, rows), **self.options)

    def record(self, which: str) -> Recorded:
        """Run the "clean" or "corrupted" input once, keeping every head's output (and, for the corrupted one
        once the layer blocks are known, each block's output)."""
        import torch

        recorder = RecordOutputs(self.layout)
        kept: dict[int, Any] = {}
        with model_failures(self.layout.name, self.tokens), hook_handles() as handles, \
                intervening(self.model, recorder), torch.inference_mode():
            if which == "corrupted" and self.blocks is not None:
                for i, block in enumerate(self.blocks):
                    handles.append(block.register_forward_hook(lambda _m, _a, out, i=i: kept.__setitem__(i, out)))
            outputs = self._run(self.clean if which == "clean" else self.corrupted, 1)
        read, reads = readout(outputs)
        if self.blocks is None and not self.layout.encoder_decoder:
            self.layout = self.layout.with_modules(recorder.modules)
            self.blocks = layer_blocks(self.model, recorder.modules, self.layout.kinds["self"][0])
        blocks = [kept[i] for i in range(len(self.blocks))] if self.blocks and len(kept) == len(self.blocks) else None
        return Recorded(recorder.outputs, recorder.modules, read, reads, blocks)

    def exact(self, rows: Sequence[RowPatch], clean: Recorded, corrupted: Recorded, metric: Metric,
              chunk_tokens: int = CHUNK_TOKENS) -> np.ndarray:
        """The metric of each patched run of the corrupted input (float64, one per row)."""
        import torch

        order = sorted(range(len(rows)), key=lambda r: (rows[r].site[1], r))
        per_chunk = max(1, chunk_tokens // max(1, self.tokens))
        results = np.empty(len(rows), dtype=np.float64)
        patcher = PatchOutputs(self.layout, clean.outputs, {})
        with model_failures(self.layout.name, self.tokens), intervening(self.model, patcher), torch.inference_mode():
            for start in range(0, len(order), per_chunk):
                chunk = order[start:start + per_chunk]
                patcher.masks = self._masks([rows[r] for r in chunk], clean)
                with replaced_forwards(self._skips(min(rows[r].site[1] for r in chunk), len(chunk), corrupted)):
                    outputs = self._run(self.corrupted, len(chunk))
                values = metric(readout(outputs)[0])
                results[chunk] = values.detach().double().cpu().numpy()
        return results

    def _masks(self, rows: Sequence[RowPatch], clean: Recorded) -> dict[Site, Any]:
        import torch

        masks: dict[Site, Any] = {}
        for b, row in enumerate(rows):
            out = clean.outputs[row.site]
            mask = masks.get(row.site)
            if mask is None:
                mask = masks[row.site] = torch.zeros((len(rows), out.shape[1], out.shape[2], 1), dtype=torch.bool,
                                                      device=out.device)
            positions = range(out.shape[1]) if row.positions is None else row.positions
            heads = range(out.shape[2]) if row.heads is None else row.heads
            mask[b, torch.tensor(list(positions))[:, None], torch.tensor(list(heads))[None, :]] = True
        return masks

    def _skips(self, first: int, rows: int, corrupted: Recorded) -> dict[Any, Callable[..., Any]]:
        """Forwards that hand on the corrupted run's output for the blocks below layer `first`."""
        if self.layout.encoder_decoder or self.blocks is None or corrupted.blocks is None or first == 0:
            return {}
        try:
            results = [_expanded(corrupted.blocks[i], rows) for i in range(first)]
        except TypeError:  # a block output of a form tx_magic does not copy: run every layer
            return {}
        return {self.blocks[i]: (lambda *_a, _r=results[i], **_k: _r) for i in range(first)}

    def gradient(self, metric: Metric) -> tuple[float, dict[Site, Any], dict[Site, Any]]:
        """(metric of the corrupted run, d metric / d each site's head outputs (1, q, H, d), those outputs)."""
        import torch

        probe = Probe(self.layout)
        with model_failures(self.layout.name, self.tokens), frozen_parameters(self.model), \
                torch.inference_mode(False), torch.enable_grad(), intervening(self.model, probe):
            value = metric(readout(self._run(self.corrupted, 1))[0])
            if not getattr(value, "requires_grad", False):
                raise OptionError("method='gradient' needs a metric computed with torch from the logits it is given "
                                  "(it returned something autograd cannot follow): return a torch scalar.")
            sites = list(probe.deltas)
            grads = torch.autograd.grad(value.sum(), [probe.deltas[s] for s in sites], allow_unused=True)
        found = {s: (g if g is not None else torch.zeros_like(probe.deltas[s])).detach()
                 for s, g in zip(sites, grads, strict=True)}
        return float(value.detach().sum()), found, probe.outputs
