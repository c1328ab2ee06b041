"""`ModelReplay`: a transformers model and the exact batch a capture ran, to run once more under
tx_magic's instruments (`tx_magic.capturing.recording`) for the analyses beyond the weights.

It holds the model strongly (see `tx_magic.core.replay` for why); the batch is a few lists of ids.
The pass runs in eval mode through the model's own eager attention, and the model is put back as it
was (attention implementation, mode, hooks) however the pass ends.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.errors import ReplayError, model_failures
from ..core.replay import LayerRecord, Recording
from .instrument import Instrument, instrumented, supports
from .models import input_device
from .recording import PassRecorder


class ModelReplay:
    """Runs `model` on `batch` (lists of ids per input name, one sequence) once more when asked."""

    def __init__(self, model: Any, batch: Mapping[str, Any], name: str, instruments: Sequence[Instrument] = ()) -> None:
        self.model = model
        self.batch = {key: list(value) for key, value in batch.items()}
        self.name = name
        #: An intervened run's interventions (`tx_magic.capturing.interventions`), replayed before the recorder.
        self.instruments = tuple(instruments)

    @property
    def description(self) -> str:
        return type(self.model).__name__

    def record(self, kinds: Mapping[str, int], *, flow: bool) -> Recording:
        import torch

        model = self.model
        if not supports(model):
            raise ReplayError(f"{self.description} cannot be instrumented (it is not a transformers 5 model with "
                              "set_attn_implementation): value norms, queries/keys and the flow need one.")
        try:
            device = input_device(model)
        except (StopIteration, AttributeError, TypeError):
            device = "cpu"
        batch = {k: torch.tensor([v], device=device) for k, v in self.batch.items()}
        recorder = PassRecorder(flow=flow)
        n = len(self.batch["input_ids"])
        with model_failures(self.name, n), recorder.hooks(model), \
                instrumented(model, *self.instruments, recorder) as run, \
                torch.inference_mode():
            model(**batch, return_dict=True, **_lean_options(model))
        if run.calls == 0:
            raise ReplayError(f"{self.description} does not compute attention through transformers' attention "
                              "interface, so tx_magic cannot instrument it.")
        return Recording(layers=_by_kind(recorder, kinds), flow=flow)


def _lean_options(model: Any) -> dict[str, Any]:
    """No cache and only the last position's logits, where the model takes them (nothing else is read)."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError, AttributeError):
        return {}
    out: dict[str, Any] = {}
    if "use_cache" in params:
        out["use_cache"] = False
    if "logits_to_keep" in params:
        out["logits_to_keep"] = 1
    return out


def _by_kind(recorder: PassRecorder, kinds: Mapping[str, int]) -> dict[str, list[LayerRecord]]:
    """Attention calls in call order, given to the kinds: a self-attention stack's layers in order; an
    encoder-decoder's encoder layers first, then each decoder layer's self- and cross-attention in turn."""
    order = sorted(recorder.calls)
    if "self" in kinds:
        return {"self": [recorder.layer_record(i) for i in order[:kinds["self"]]]}
    encoder = kinds.get("encoder", 0)
    out: dict[str, list[LayerRecord]] = {"encoder": [recorder.layer_record(i) for i in order[:encoder]]}
    rest = order[encoder:]
    out["decoder"] = [recorder.layer_record(i) for i in rest[0::2][:kinds.get("decoder", 0)]]
    out["cross"] = [recorder.layer_record(i) for i in rest[1::2][:kinds.get("cross", 0)]]
    return out
