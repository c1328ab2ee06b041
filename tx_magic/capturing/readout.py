"""A causal LM's final norm and unembedding, found in the model, as one map from hidden states to
logits (what the logit lens and next-token logits read hidden states through)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Attribute names of a causal LM's final norm, on the model or its base model.
_NORM_NAMES = ("ln_f", "norm", "final_layer_norm", "final_layernorm", "final_norm", "layer_norm")


class Unembedding:
    """A causal LM's final norm and unembedding, as one map from hidden states to logits."""

    def __init__(self, norm: Any, head: Any) -> None:
        self.norm = norm
        self.head = head

    @property
    def vocab_size(self) -> int:
        weight = getattr(self.head, "weight", None)
        return int(weight.shape[0]) if weight is not None else int(self.head.out_features)

    def _to_head(self, hidden: Any) -> Any:
        """`hidden` on the device and dtype the head computes in. A head offloaded by accelerate
        (``device_map`` with disk/CPU offload) has its weight on "meta" and computes on its hook's
        execution device, loading the weight as it runs."""
        weight = getattr(self.head, "weight", None)
        if weight is None:
            return hidden
        device = weight.device
        if device.type == "meta":
            hook = getattr(self.head, "_hf_hook", None)
            device = getattr(hook, "execution_device", None) or "cpu"
        return hidden.to(device=device, dtype=weight.dtype)

    def normed(self, hidden: Any) -> Any:
        """Hidden states (torch, any leading shape) through the final norm, on the head's device and dtype."""
        import torch

        with torch.inference_mode():
            return self.norm(self._to_head(hidden))

    def logits(self, hidden: Any, *, normed: bool = False, ids: Any = None) -> Any:
        """float32 logits (m, V) for hidden states (m, d) (a torch tensor); `normed` skips the norm;
        `ids` (a tensor of token ids) computes only those columns (m, len(ids))."""
        import torch

        with torch.inference_mode():
            x = self._to_head(hidden)  # kept hidden states are float32 on the CPU: back to the head's device
            x = x if normed else self.norm(x)
            if ids is None:
                return self.head(x).float()
            weight = self.head.weight if type(self.head) is torch.nn.Linear else None
            if weight is not None and weight.device.type != "meta":  # only the rows asked for
                ids = ids.to(weight.device)
                bias = self.head.bias[ids] if self.head.bias is not None else None
                return torch.nn.functional.linear(x, weight[ids], bias).float()
            return self.head(x)[:, ids.to(x.device)].float()


def find_unembedding(model: Any) -> Unembedding | None:
    """The final norm and ``lm_head`` of a causal LM, or None when the model has no such pair."""
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False) or not hasattr(model, "get_output_embeddings"):
        return None
    try:
        head = model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if head is None:
        return None
    base = getattr(model, "base_model", None)
    for owner in (base, model, getattr(base, "decoder", None)):
        for name in _NORM_NAMES:
            norm = getattr(owner, name, None) if owner is not None else None
            if norm is not None and callable(norm) and not isinstance(norm, (bool, int, float)):
                return Unembedding(norm, head)
    return None


def hidden_array(hidden_states: Sequence[Any]) -> np.ndarray:
    """float32 numpy (rows, tokens, width) from a model's ``hidden_states`` (tensors (1, n, d) or (n, d))."""
    rows = []
    for h in hidden_states:
        if hasattr(h, "detach"):
            h = h.detach().float().cpu().numpy()
        h = np.asarray(h, dtype=np.float32)
        rows.append(h[0] if h.ndim == 3 else h)
    return np.stack(rows)


def last_is_normed(hidden_states: Sequence[Any], unembed: Unembedding, logits_last: Any) -> bool:
    """Whether the model's last hidden state is already normed: its unembedding alone gives the
    model's own logits (checked at the last position)."""
    import torch

    h = hidden_states[-1]
    h = h[0] if h.dim() == 3 else h
    theirs = logits_last.reshape(-1).float()
    if theirs.shape[0] != unembed.vocab_size:
        return False
    # A sample of the vocabulary (the model's top 8 and evenly spaced ids) tells as well as all of it.
    ids = torch.cat([theirs.topk(min(8, theirs.shape[0])).indices,
                     torch.linspace(0, theirs.shape[0] - 1, min(56, theirs.shape[0]), device=theirs.device).long()])
    mine = unembed.logits(h[-1:], normed=True, ids=ids)[0]
    return bool(torch.allclose(mine, theirs[ids].to(mine.device), rtol=1e-3, atol=1e-3))


