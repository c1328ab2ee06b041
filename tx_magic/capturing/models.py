"""What tx_magic reads off a model object: whether it is a transformers model, its display name,
and where its inputs go."""

from __future__ import annotations

from typing import Any


def is_transformers_model(model: Any) -> bool:
    """Whether `model` is a transformers PreTrainedModel (captured through output_attentions)."""
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - transformers is a dependency
        return False
    return isinstance(model, PreTrainedModel)


def model_name(model: Any) -> str:
    """A short display name: the last part of the config's name or path, else the class name."""
    path = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
    return path.rstrip("/").split("/")[-1] if path else type(model).__name__


def input_device(model: Any) -> Any:
    """Where inputs go: the input embedding's device (also for models spread with device_map)."""
    import torch

    device_map = getattr(model, "hf_device_map", None)
    get = getattr(model, "get_input_embeddings", None)
    try:
        embedding = get() if callable(get) else None
    except NotImplementedError:
        embedding = None
    if isinstance(device_map, dict) and device_map:
        names = {id(m): n for n, m in model.named_modules()}
        name = names.get(id(embedding), "") if embedding is not None else ""
        place = next((d for key, d in device_map.items() if name == key or name.startswith(key + ".") or key == ""),
                     None)
        if place is None:
            place = next(iter(device_map.values()))
        if isinstance(place, int):
            return torch.device("cuda", place)
        if place in ("disk", "meta", "cpu"):
            return torch.device("cpu")
        return torch.device(place)
    weight = getattr(embedding, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.device.type != "meta":
        return weight.device
    for p in model.parameters():
        if p.device.type != "meta":
            return p.device
    return torch.device("cpu")


