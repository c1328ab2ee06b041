"""Images for ViT-style models: patches as tokens, and the picture the model saw.

``tx_magic.explain(vit_model, image_processor, image)`` takes a PIL image, a numpy array
(H, W, 3) / (H, W) / (3, H, W), a torch tensor, or a path. The trace's tokens are "[CLS]" (and
"[DIST]" or registers where the model has them) then "patch r,c" row by row; ``trace.image``
holds the picture as the model saw it (after resizing, normalisation undone) as PNG bytes, and
the patch grid, so the widget can draw attention over it. Pillow is needed (``tx_magic[images]``).
"""

from __future__ import annotations

import io
import math
import os
import pathlib
from typing import Any

import numpy as np

from ..core.errors import NoAttentionError, TxMagicError
from ..core.image import PatchImage
from ..core.tokens import Tokens
from ..core.trace import Trace
from . import memory
from .arrays import to_numpy
from .hooks import PROTOCOL_HELP, record_attention, stack_kinds
from .model_state import eager_attention
from .models import input_device, is_transformers_model, model_name

#: File endings read as images when a path is given.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")


class ImageInputError(TxMagicError, ValueError):
    """An image that cannot be read, or a model that does not take images as patches."""


def looks_like_image_processor(processor: Any) -> bool:
    """An image processor (transformers' or anything with image normalisation settings), not a tokenizer."""
    try:
        from transformers.image_processing_utils import BaseImageProcessor

        if isinstance(processor, BaseImageProcessor):
            return True
    except ImportError:  # pragma: no cover
        pass
    name = type(processor).__name__
    return "ImageProcessor" in name or (hasattr(processor, "image_mean") and not hasattr(processor, "vocab_size"))


def is_image_input(value: Any, processor: Any) -> bool:
    """Whether `value` (what came in place of text) is an image: a PIL image, or anything (an array,
    a path) given with an image processor."""
    return _is_pil(value) or looks_like_image_processor(processor)


def _is_pil(value: Any) -> bool:
    return type(value).__module__.startswith("PIL.") and hasattr(value, "convert")


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise ImageInputError("Images need Pillow: pip install 'tx_magic[images]' (or pip install pillow).") from None
    return Image


def load_image(value: Any) -> Any:
    """`value` as an RGB PIL image: a PIL image, a path, or an array (H, W), (H, W, 3|4) or (3, H, W),
    uint8 0..255 or float 0..1."""
    Image = _pil()
    if _is_pil(value):
        return value.convert("RGB")
    if isinstance(value, (str, os.PathLike)):
        path = pathlib.Path(value).expanduser()
        if not path.is_file():
            raise ImageInputError(
                f"No image file at {str(path)!r}: give a path to a PNG/JPEG file, a PIL image or an array.")
        try:
            with Image.open(path) as img:
                return img.convert("RGB")
        except OSError as exc:
            raise ImageInputError(f"Could not read {path.name} as an image: {exc}") from None
    try:
        arr = to_numpy(value, "the image")
    except TypeError as exc:
        raise ImageInputError(str(exc)) from None
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ImageInputError(f"An image array must be (H, W), (H, W, 3) or (3, H, W); got shape {arr.shape}.")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ImageInputError("The image array has NaN or infinite values.")
        arr = np.clip(arr * 255 if arr.max() <= 1.0 else arr, 0, 255).round()
    return Image.fromarray(np.asarray(arr, dtype=np.uint8)).convert("RGB")


def capture_image(model: Any, processor: Any, image: Any, *, name: str | None = None) -> Trace:
    """Run a ViT-style model once on `image` (prepared by `processor`) and return its `Trace`."""
    import torch

    picture = load_image(image)
    if processor is None or not callable(processor):
        raise ImageInputError("Give the model's image processor (e.g. AutoImageProcessor.from_pretrained(...)) "
                              "with the image.")
    try:
        pixels = processor(images=picture, return_tensors="pt")["pixel_values"]
    except Exception as exc:  # noqa: BLE001 - any processor: one clear line
        raise ImageInputError(f"The image processor could not prepare the image: {exc}") from None
    name = name or model_name(model)
    pixels = pixels.to(input_device(model))
    patch = getattr(getattr(model, "config", None), "patch_size", None)
    if isinstance(patch, int) and patch > 0:  # the memory guard, from the number of patches
        memory.plan_capture(model, (pixels.shape[-2] // patch) * (pixels.shape[-1] // patch) + 1, streamable=False)
    if is_transformers_model(model):
        with eager_attention(model), torch.inference_mode():
            outputs = model(pixel_values=pixels, output_attentions=True, return_dict=True)
        layers = [a for a in (getattr(outputs, "attentions", None) or ()) if a is not None]
        if not layers:
            raise NoAttentionError(f"{name} returned no attention weights for the image.")
        att = torch.stack([a[0].detach().float().cpu() for a in layers]).numpy()
    else:
        records = record_attention(model, lambda: model(pixels))
        if not records:
            raise NoAttentionError(f"tx_magic found no attention weights in {name}. {PROTOCOL_HELP}")
        n = records[0].weights.shape[-1]
        att = stack_kinds(records, {"input": Tokens(text=tuple(str(i) for i in range(n)))}, name)["self"]
    height, width = int(pixels.shape[-2]), int(pixels.shape[-1])
    rows, cols = _grid(model, height, width, att.shape[-1])
    first = att.shape[-1] - rows * cols
    tokens = Tokens(text=tuple(_special_names(first) + [f"patch {r},{c}" for r in range(rows) for c in range(cols)]),
                    special=tuple([True] * first + [False] * (rows * cols)))
    seen = PatchImage(png=_png(seen_pixels(pixels[0].detach().float().cpu().numpy(), processor)), width=width,
                      height=height, rows=rows, cols=cols, first=first)
    return Trace(model_name=name, sequences={"input": tokens}, attentions={"self": att.astype(np.float32)},
                 image=seen)


def _grid(model: Any, height: int, width: int, n: int) -> tuple[int, int]:
    config = getattr(model, "config", None)
    patch = getattr(config, "patch_size", None) or getattr(model, "patch_size", None)
    if isinstance(patch, (tuple, list)):
        ph, pw = int(patch[0]), int(patch[1])
    elif isinstance(patch, int):
        ph = pw = patch
    else:
        side = math.isqrt(max(n - 1, 0))  # no patch size known: assume one [CLS] and a square grid
        if side * side != n - 1:
            raise ImageInputError(f"Cannot tell how {n} tokens cover the image: give the model a config.patch_size.")
        return side, side
    rows, cols = height // ph, width // pw
    if rows * cols > n or n - rows * cols > 8:
        raise ImageInputError(
            f"The model has {n} tokens but its {ph}x{pw} patches of a {width}x{height} image make {rows * cols}: "
            "tx_magic shows ViT-style models whose tokens are [CLS] (and the like) then one per patch."
        )
    return rows, cols


def _special_names(first: int) -> list[str]:
    if first == 1:
        return ["[CLS]"]
    if first == 2:
        return ["[CLS]", "[DIST]"]
    return ["[CLS]"] + [f"[REG {i}]" for i in range(1, first)]


def _per_channel(v: Any) -> np.ndarray:
    """A processor's per-channel setting (mean, std) shaped to broadcast over (channels, H, W)."""
    return np.asarray(v, dtype=np.float64).reshape(-1, 1, 1)


def seen_pixels(chw: np.ndarray, processor: Any) -> np.ndarray:
    """The model's input (channels, H, W) back as an RGB uint8 picture (H, W, 3): normalisation and
    rescaling undone with the processor's settings, else stretched to 0..255."""
    img = np.asarray(chw, dtype=np.float64)
    mean, std = getattr(processor, "image_mean", None), getattr(processor, "image_std", None)
    if getattr(processor, "do_normalize", mean is not None) and mean is not None and std is not None:
        img = img * _per_channel(std) + _per_channel(mean)
        rescale = float(getattr(processor, "rescale_factor", 1 / 255))
        scale = 1 / rescale if getattr(processor, "do_rescale", True) else 1
        img = img * scale
    else:
        lo, hi = float(img.min()), float(img.max())
        img = (img - lo) / (hi - lo or 1) * 255
    img = np.moveaxis(img, 0, -1)
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    return np.clip(np.round(img[..., :3]), 0, 255).astype(np.uint8)


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    _pil().fromarray(rgb).save(buf, format="PNG", optimize=True)
    return buf.getvalue()
