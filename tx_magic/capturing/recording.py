"""One instrumented pass that records what the analyses beyond attention weights need
(`tx_magic.core.replay.LayerRecord`): queries, keys and values as the model used them, each head's
output projection and the residual stream around every layer.

- Queries, keys, values and the scaling come from the instrumented attention function
  (`tx_magic.capturing.instrument`), before grouped KV heads are repeated; for rotary models the
  queries and keys before the rotation are the model's own ``apply_rotary_pos_emb`` run backwards
  (rotating by minus the angle), checked by rotating them forwards again.
- The output projection W_O is *found*, not looked up by name: the first linear module (``nn.Linear``,
  or GPT-2's ``Conv1D`` whose weight is (in, out)) called after an attention call whose input equals
  that call's concatenated head outputs is its projection (Llama's ``o_proj``, GPT-2's ``attn.c_proj``,
  BERT's sibling ``attention.output.dense``, BART's ``out_proj``), and its output must equal
  ``input @ W + b``. A model where no module passes both gets no value norms, with a message.
- The residual stream (flow passes): the layer's input (a forward pre-hook on the layer, an element of
  the model's ``nn.ModuleList``), the projection's output, the layer's output, and the inputs and outputs
  of its children and norms, matched to one of two layouts (`tx_magic.core.replay.PRE_NORM`: the layer's
  output is input + attention + one child's output; `POST_NORM`: a norm reads input + attention, another
  gives the layer's output).

Every hook is removed when the pass ends, however it ends (`model_state.hook_handles`).
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.replay import POST_NORM, PRE_NORM, LayerRecord, Residual
from .instrument import AttentionCall, Instrument
from .model_state import hook_handles


def linear_weight(module: Any) -> tuple[Any, Any] | None:
    """(W as (in, out), bias or None) of a linear module (``nn.Linear`` or transformers' ``Conv1D``), else None."""
    import torch

    if isinstance(module, torch.nn.Linear):
        return module.weight.t(), module.bias
    if type(module).__name__ == "Conv1D" and hasattr(module, "nf") and getattr(module, "weight", None) is not None:
        return module.weight, getattr(module, "bias", None)
    return None


def _numpy(x: Any) -> np.ndarray:
    out: np.ndarray = x.detach().float().cpu().numpy()
    return out


def _close(a: Any, b: Any, dtype: Any = None) -> bool:
    """Equal up to the rounding of a few sums in `dtype` (float32 by default; a bfloat16 model's own outputs
    are only that exact), relative to the larger tensor's scale."""
    import torch

    if a.shape != b.shape:
        return False
    eps = torch.finfo(dtype).eps if dtype is not None and dtype.is_floating_point else 0.0
    rtol = max(1e-4, 8 * eps)
    scale = float(torch.maximum(a.abs().max(), b.abs().max())) if a.numel() else 0.0
    return bool(torch.allclose(a.float(), b.float(), rtol=rtol, atol=rtol / 10 * max(scale, 1.0)))


def _first_tensor(output: Any) -> Any:
    return output[0] if isinstance(output, (tuple, list)) and output else output


@dataclass
class _Call:
    """What one attention call gave, until the pass ends."""

    module: Any
    index: int
    scaling: float
    queries: np.ndarray
    keys: np.ndarray
    values: Any  # torch (Hkv, K, d) float32: the value norms are computed from it after the pass
    last_row: np.ndarray | None = None
    projection: Any = None
    missing: str = ""
    unrotated: tuple[np.ndarray, np.ndarray] | None = None
    # flow passes
    layer: Any = None
    inputs: Any = None
    attention: Any = None
    outputs: Any = None
    children: list[Any] = field(default_factory=list)
    norms: list[tuple[Any, Any]] = field(default_factory=list)
    residual: Residual | None = None
    dtype: Any = None
    eps: float = float(np.finfo(np.float32).eps)


class PassRecorder(Instrument):
    """Records one pass (batch of one sequence); `hooks(model)` must be active around it."""

    def __init__(self, flow: bool) -> None:
        self.flow = flow
        self.calls: dict[int, _Call] = {}
        self._pending: tuple[_Call, Any] | None = None
        self._positions: Any = None
        self._layers: list[tuple[Any, Any]] = []
        self._handles: list[Any] = []

    # -- the instrument ---------------------------------------------------------------------------

    def on_inputs(self, call: AttentionCall, query: Any, key: Any, value: Any) -> None:
        import torch

        if call.step > 0 or call.layer in self.calls:
            return
        scaling = float(call.scaling) if call.scaling is not None else float(query.shape[-1]) ** -0.5
        record = _Call(call.module, call.layer, scaling, _numpy(query[0]), _numpy(key[0]),
                       value[0].detach().float().clone())
        record.eps = float(torch.finfo(query.dtype).eps) if query.dtype.is_floating_point else record.eps
        record.unrotated = self._unrotated(call.module, query, key)
        if self.flow and self._layers:
            record.layer, hidden = self._layers[-1]
            record.inputs = hidden[0].detach().float().clone()
            record.dtype = hidden.dtype
            self._watch_layer(record)
        self.calls[call.layer] = record

    def on_weights(self, call: AttentionCall, weights: Any) -> None:
        record = self.calls.get(call.layer)
        if record is not None and call.step == 0:
            record.last_row = _numpy(weights[0, :, -1])

    def on_output(self, call: AttentionCall, output: Any) -> None:
        record = self.calls.get(call.layer)
        if record is not None and call.step == 0:
            self._pending = (record, output)

    # -- hooks ------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def hooks(self, model: Any) -> Iterator[None]:
        """The hooks the pass needs on `model`'s modules, removed when the block ends."""
        import torch

        with hook_handles() as handles:
            self._handles = handles
            for module in model.modules():
                if linear_weight(module) is not None:
                    handles.append(module.register_forward_hook(self._linear_called))
                if _takes_position_embeddings(module):
                    handles.append(module.register_forward_pre_hook(self._positions_seen, with_kwargs=True))
                if self.flow and isinstance(module, torch.nn.ModuleList):
                    for layer in module:
                        handles.append(layer.register_forward_pre_hook(self._layer_entered, with_kwargs=True))
                        handles.append(layer.register_forward_hook(self._layer_left))
            yield

    def _linear_called(self, module: Any, args: tuple[Any, ...], output: Any) -> None:
        if self._pending is None or not args:
            return
        record, heads = self._pending
        x = args[0]
        if getattr(x, "shape", None) is None or x.numel() != heads.numel() or x.shape[:-1] != heads.shape[:2]:
            return
        if not bool((x.reshape(-1) == heads.reshape(-1)).all()):
            return
        self._pending = None
        weight, bias = linear_weight(module) or (x.new_zeros(0), None)
        expected = x.float() @ weight.float() + (0 if bias is None else bias.float())
        if not _close(output, expected, output.dtype):
            record.missing = (f"the output projection of attention layer {record.index} "
                              f"({type(module).__name__}) is not plain x @ W + b (quantized or wrapped?)")
            return
        record.projection = module
        if self.flow:
            record.attention = output[0].detach().float().clone()

    def _positions_seen(self, _module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        value = kwargs.get("position_embeddings")
        if value is None:
            index = _position_embeddings_index(_module)
            value = args[index] if index is not None and index < len(args) else None
        if isinstance(value, (tuple, list)) and len(value) == 2:
            self._positions = value

    def _layer_entered(self, _module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        hidden = args[0] if args else kwargs.get("hidden_states")
        self._layers.append((_module, hidden))

    def _layer_left(self, module: Any, _args: tuple[Any, ...], output: Any) -> None:
        if self._layers and self._layers[-1][0] is module:
            self._layers.pop()
        for record in self.calls.values():
            if record.layer is module and record.outputs is None:
                record.outputs = _first_tensor(output)[0].detach().float().clone()
                record.residual = _residual(record)
                record.children, record.norms = [], []  # matched: let the layer's tensors go

    def _watch_layer(self, record: _Call) -> None:
        """Hooks, for this pass, on the modules inside the layer (those after the attention call fire)."""
        width = record.inputs.shape

        def done(module: Any, args: tuple[Any, ...], output: Any) -> None:
            out = _first_tensor(output)
            if not hasattr(out, "shape") or out.shape[1:] != width:
                return
            record.children.append(out[0].detach().float().clone())
            if "norm" in type(module).__name__.lower() and args and getattr(args[0], "shape", None) == out.shape:
                record.norms.append((args[0][0].detach().float().clone(), record.children[-1]))

        for module in record.layer.modules():
            if module is not record.layer:
                self._handles.append(module.register_forward_hook(done))

    def _unrotated(self, module: Any, query: Any, key: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """Queries and keys before the rotary embedding: the model's own rotation by minus the angle."""
        rotate = getattr(sys.modules.get(type(module).__module__), "apply_rotary_pos_emb", None)
        if self._positions is None or not callable(rotate):
            return None
        cos, sin = self._positions
        try:
            q0, k0 = rotate(query, key, cos, -sin)
            q1, k1 = rotate(q0, k0, cos, sin)
        except (TypeError, RuntimeError, ValueError, IndexError):
            return None
        if not (_close(q1, query) and _close(k1, key)):
            return None
        return _numpy(q0[0]), _numpy(k0[0])

    # -- after the pass ---------------------------------------------------------------------------

    def layer_record(self, index: int) -> LayerRecord:
        """What call `index` (the layer order of `instrument.AttentionCall.layer`) gave, as data."""
        record = self.calls[index]
        if record.last_row is None:
            raise RuntimeError(f"attention call {index} gave no weights")
        norms = projection = bias = None
        missing = record.missing
        if record.projection is None and not missing:
            missing = (f"no output projection was found for attention layer {index} ({type(record.module).__name__}): "
                       "no linear module took its head outputs as they are")
        if record.projection is not None:
            slices, bias_t = head_slices(record.projection, record.queries.shape[0], record.queries.shape[-1])
            norms = value_norms(record.values, slices)
            if self.flow:
                projection = _numpy(slices)
                bias = None if bias_t is None else _numpy(bias_t)
        residual = record.residual
        if self.flow and record.projection is not None and residual is None:
            missing = missing or (f"tx_magic cannot follow the residual stream of {type(record.layer).__name__}"
                                  " (neither pre-norm nor post-norm additions)")
        return LayerRecord(queries=record.queries, keys=record.keys, values=_numpy(record.values),
                           scaling=record.scaling, last_row=record.last_row, value_norms=norms, projection=projection,
                           bias=bias, unrotated=record.unrotated, residual=residual, missing=missing,
                           eps=record.eps)


def head_slices(projection: Any, heads: int, d: int) -> tuple[Any, Any]:
    """Each head's slice W_O^h of an output projection, float32 torch (heads, d, width), and its bias."""
    weight, bias = linear_weight(projection) or (None, None)
    if weight is None or weight.shape[0] != heads * d:
        raise RuntimeError(f"output projection takes {None if weight is None else weight.shape[0]} inputs, "
                           f"not {heads} heads x {d}")
    return weight.detach().float().reshape(heads, d, -1), bias


def value_norms(values: Any, slices: Any, chunk: int = 1024) -> np.ndarray:
    """||v_j^{g(h)} W_O^h|| per head and key, float32 (heads, keys); values (Hkv, K, d), slices (H, d, D)."""
    import torch

    heads, kv = slices.shape[0], values.shape[0]
    v = values.repeat_interleave(heads // kv, dim=0).to(slices.device)
    out = torch.empty(heads, values.shape[1])
    with torch.inference_mode():
        for start in range(0, values.shape[1], chunk):
            out[:, start:start + chunk] = torch.linalg.vector_norm(v[:, start:start + chunk] @ slices, dim=-1).cpu()
    return out.numpy()


def _residual(record: _Call) -> Residual | None:
    """Match the layer's recorded tensors to a pre-norm or post-norm layout (None: neither).

    Pre-norm: out = x + a + c for a module's output c (the MLP). Post-norm: a norm reads x + a, another
    gives out, and what that one reads is the first one's output plus a module's output (the MLP's last
    linear). Anything more in the layer (an encoder-decoder's cross-attention) matches neither.
    """
    x, a, out = record.inputs, record.attention, record.outputs
    if x is None or a is None or out is None:
        return None
    whole = x + a

    def close(p: Any, q: Any) -> bool:
        return _close(p, q, record.dtype)

    for child in record.children:
        if close(out, whole + child):
            return Residual(PRE_NORM, _numpy(x), _numpy(whole), _numpy(whole), _numpy(out))
    for first_in, first_out in record.norms:
        if not close(first_in, whole):
            continue
        for second_in, second_out in record.norms:
            if second_in is first_in or not close(second_out, out):
                continue
            if any(close(second_in, first_out + child) for child in record.children):
                return Residual(POST_NORM, _numpy(x), _numpy(first_in), _numpy(first_out), _numpy(second_in))
    return None


def _position_embeddings_index(module: Any) -> int | None:
    try:
        names = list(inspect.signature(module.forward).parameters)
    except (TypeError, ValueError):
        return None
    return names.index("position_embeddings") if "position_embeddings" in names else None


def _takes_position_embeddings(module: Any) -> bool:
    return _position_embeddings_index(module) is not None
