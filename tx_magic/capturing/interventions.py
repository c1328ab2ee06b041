"""Interventions on attention heads, as instruments of tx_magic's instrumented attention (`instrument.py`).

A head's output is what `Instrument.on_output` receives: (B, q, H, d), each head's attention-weighted
values before the output projection (the head's slice of the projection's input). So one set of
instruments serves every model whose attention goes through transformers' attention interface:

- `Ablate`: an ablated head's output becomes zeros, or its mean over the positions of the same input;
- `EditWeights`: an attention weight is set and the rest of its row rescaled to sum to 1 (0 blocks a key);
- `RecordOutputs`: every head's output, for patching;
- `PatchOutputs`: batch row b takes some heads' outputs (at some positions) from another run;
- `Probe`: adds a zero that requires grad to every head's output, so autograd gives the gradient
  of anything computed later with respect to each head's output (attribution patching).

`Layout` names each attention call by (kind, layer): the order of first calls is the layer index of a
self-attention stack, and an encoder-decoder's encoder layers, then decoder self and cross alternating.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..core.errors import NoAttentionError, OptionError
from ..core.intervention import Head, Intervention, head_name
from .instrument import AttentionCall, Instrument, Run, instrumented, supports
from .memory import config_int

#: (kind, layer) of an attention call.
Site = tuple[str, int]


@dataclass(frozen=True)
class Layout:
    """Layers and heads per attention kind of a transformers model, read from its config."""

    #: kind -> (layers, heads)
    kinds: Mapping[str, tuple[int, int]]
    encoder_decoder: bool
    name: str
    #: id(attention module) -> its site, once known (a run that skips layers then still names calls right).
    modules: Mapping[int, Site] = field(default_factory=dict)

    @classmethod
    def of(cls, model: Any, name: str) -> Layout:
        config = getattr(model, "config", None)

        def get(*names: str) -> int:
            return config_int(config, *names) or 0

        if bool(getattr(config, "is_encoder_decoder", False)):
            enc = (get("encoder_layers", "num_layers", "num_hidden_layers"),
                   get("encoder_attention_heads", "num_heads", "num_attention_heads"))
            dec = (get("decoder_layers", "num_decoder_layers", "num_layers", "num_hidden_layers"),
                   get("decoder_attention_heads", "num_heads", "num_attention_heads"))
            return cls({"encoder": enc, "decoder": dec, "cross": dec}, True, name)
        return cls({"self": (get("num_hidden_layers", "n_layer", "num_layers"),
                             get("num_attention_heads", "n_head", "num_heads"))}, False, name)

    @property
    def first_kind(self) -> str:
        return next(iter(self.kinds))

    def with_modules(self, modules: Mapping[Site, Any]) -> Layout:
        """This layout naming calls by their module (`modules`: site -> attention module of a whole run)."""
        return replace(self, modules={id(module): site for site, module in modules.items()})

    def site(self, call: AttentionCall) -> Site:
        """(kind, layer) of an attention call."""
        known = self.modules.get(id(call.module))
        if known is not None:
            return known
        if not self.encoder_decoder:
            return "self", call.layer
        encoder_layers = self.kinds["encoder"][0]
        if call.layer < encoder_layers:
            return "encoder", call.layer
        j = call.layer - encoder_layers
        return ("decoder" if j % 2 == 0 else "cross"), j // 2

    def check_head(self, kind: str, layer: int, head: int) -> None:
        """An OptionError naming the model's layers and heads when (kind, layer, head) is not one of them."""
        if kind not in self.kinds:
            raise OptionError(f"{self.name} has no {kind!r} attention; its kinds are {list(self.kinds)}.")
        layers, heads = self.kinds[kind]
        if not (0 <= layer < layers and 0 <= head < heads):
            where = "" if kind in ("self", self.first_kind) else f" {kind}"
            raise OptionError(f"head ({layer}, {head}) is out of range: {self.name}'s{where} attention has {layers} "
                              f"layers (0..{layers - 1}) x {heads} heads (0..{heads - 1}).")


def check_intervention(intervention: Intervention, layout: Layout, lengths: Mapping[str, tuple[int, int]]) -> None:
    """Refuse heads out of range, and edits outside the (queries, keys) of their kind or whose row would
    not sum to 1, before anything runs. `lengths`: kind -> (queries, keys) of this input."""
    for kind, layer, head in intervention.ablate:
        layout.check_head(kind, layer, head)
    rows: dict[tuple[Head, int], float] = {}
    for kind, layer, head, query, key, weight in intervention.edit:
        layout.check_head(kind, layer, head)
        q, k = lengths[kind]
        if not (0 <= query < q and 0 <= key < k):
            raise OptionError(f"edit of {head_name(kind, layer, head)} at query {query}, key {key} is outside the "
                              f"{q} x {k} attention of this input (queries 0..{q - 1}, keys 0..{k - 1}).")
        row = ((kind, layer, head), query)
        rows[row] = rows.get(row, 0.0) + weight
        if rows[row] > 1 + 1e-6:
            raise OptionError(f"the edits of {head_name(kind, layer, head)}'s query {query} set weights summing to "
                              f"{rows[row]:.3g}; a row of attention sums to 1.")


def _by_site(items: Any) -> dict[Site, list[Any]]:
    out: dict[Site, list[Any]] = {}
    for kind, layer, *rest in items:
        out.setdefault((kind, layer), []).append(rest[0] if len(rest) == 1 else tuple(rest))
    return out


class Ablate(Instrument):
    """Replace ablated heads' outputs by zeros ("zero") or their mean over the input's positions ("mean")."""

    def __init__(self, layout: Layout, heads: tuple[Head, ...], mode: str) -> None:
        self.layout, self.mode = layout, mode
        self.heads = _by_site(heads)

    def on_output(self, call: AttentionCall, output: Any) -> Any:
        heads = self.heads.get(self.layout.site(call))
        if not heads:
            return None
        out = output.clone()
        if self.mode == "zero":
            out[:, :, heads] = 0
        else:
            out[:, :, heads] = output[:, :, heads].mean(dim=1, keepdim=True).expand(-1, output.shape[1], -1, -1)
        return out


class EditWeights(Instrument):
    """Set attention weights; the rest of each edited row is rescaled so the row sums to 1."""

    def __init__(self, layout: Layout, edits: tuple[Any, ...]) -> None:
        self.layout = layout
        rows: dict[Site, dict[tuple[int, int], dict[int, float]]] = {}
        for kind, layer, head, query, key, weight in edits:
            rows.setdefault((kind, layer), {}).setdefault((head, query), {})[key] = weight
        self.rows = rows

    def on_weights(self, call: AttentionCall, weights: Any) -> Any:
        import torch

        site = self.layout.site(call)
        edits = self.rows.get(site)
        if not edits:
            return None
        new = weights.clone()
        for (head, query), fixed in edits.items():
            row = weights[:, head, query]  # (B, k)
            keys = torch.tensor(list(fixed), device=row.device)
            values = torch.tensor(list(fixed.values()), dtype=row.dtype, device=row.device)
            where = head_name(site[0], site[1], head)
            masked = [k for k, w in fixed.items() if w > 0 and bool((row[:, k] == 0).all())]
            if masked:
                raise OptionError(f"{where}: query {query} cannot attend to key {masked[0]} (the mask forbids it); "
                                  f"edit keys it may attend to.")
            rest = row.clone()
            rest[:, keys] = 0
            total = rest.sum(dim=-1, keepdim=True)
            left = 1 - values.sum()
            if bool((total == 0).any()) and float(left) > 1e-6:
                raise OptionError(f"{where}: query {query} attends to no key but the edited ones, so their weights "
                                  "must sum to 1.")
            scaled = torch.where(total > 0, rest * (left / total.clamp_min(torch.finfo(row.dtype).tiny)),
                                 torch.zeros_like(rest))
            scaled[:, keys] = values
            new[:, head, query] = scaled
        return new


class RecordOutputs(Instrument):
    """Every head's output per (kind, layer), detached: (B, q, H, d)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.outputs: dict[Site, Any] = {}
        self.modules: dict[Site, Any] = {}

    def on_output(self, call: AttentionCall, output: Any) -> None:
        site = self.layout.site(call)
        self.outputs[site] = output.detach()
        self.modules[site] = call.module


class PatchOutputs(Instrument):
    """Where ``masks[site]`` (B, q, H, 1) is True, the head's output comes from ``source[site]`` (1, q, H, d)."""

    def __init__(self, layout: Layout, source: Mapping[Site, Any], masks: Mapping[Site, Any]) -> None:
        self.layout, self.source, self.masks = layout, source, masks

    def on_output(self, call: AttentionCall, output: Any) -> Any:
        import torch

        site = self.layout.site(call)
        mask = self.masks.get(site)
        if mask is None:
            return None
        return torch.where(mask, self.source[site].to(output.dtype), output)


class Probe(Instrument):
    """Adds a zero tensor that requires grad to each head's output (bit-identical), kept in ``deltas``:
    autograd then gives d(anything later)/d(head output) through every path, whatever the model's flags."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.deltas: dict[Site, Any] = {}
        self.outputs: dict[Site, Any] = {}

    def on_output(self, call: AttentionCall, output: Any) -> Any:
        import torch

        site = self.layout.site(call)
        delta = torch.zeros_like(output, requires_grad=True)
        self.deltas[site] = delta
        self.outputs[site] = output.detach()
        return output + delta


def instruments_for(intervention: Intervention, layout: Layout) -> list[Instrument]:
    """The instruments that carry out `intervention` (edits first: an ablated head's edits do not matter)."""
    out: list[Instrument] = []
    if intervention.edit:
        out.append(EditWeights(layout, intervention.edit))
    if intervention.ablate:
        out.append(Ablate(layout, intervention.ablate, intervention.ablation))
    return out


def unsupported(model: Any, why: str) -> NoAttentionError:
    """The one-line refusal for a model or input interventions cannot reach."""
    return NoAttentionError(
        f"Interventions (ablate, edit, patch) run through transformers' attention interface, which {why}. "
        "They work on transformers 5 models (GPT-2, Llama, BERT, BART and others) with text inputs "
        f"that are captured in full; {type(model).__name__} here is not one of those."
    )


@contextlib.contextmanager
def intervening(model: Any, *instruments: Instrument) -> Iterator[Run]:
    """`instrumented` with `instruments`; afterwards, refuse a model whose attention never came through
    (so nothing was done)."""
    if not supports(model):
        raise unsupported(model, "this model does not use")
    with instrumented(model, *instruments) as run:
        yield run
    if run.calls == 0:
        raise unsupported(model, "this model's attention layers did not call")
