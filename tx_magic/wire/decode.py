"""Decoding what the wire carries back into arrays (tests and reports; the renderer has its own,
js/src/wire-decode.ts), and the base64 form of the wire objects that reports and fixtures store."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .schema import DTYPE, DTYPE_UINT8, LAYOUT_DENSE, LAYOUT_LOWER, Kind


def decode_block(block: Mapping[str, Any], buffers: Sequence[Any] | None = None) -> np.ndarray:
    """A value block's values as float32 (heads, rows, columns); uint8 dequantized; a LAYOUT_LOWER block
    expanded, the cells above the diagonal 0.

    `block`: a `ValueBlock`, or a reply's `BlockHeader` with its `buffers` ([data] or [data, scale]).
    """
    parts = list(buffers) if buffers else [block["data"], *([block["scale"]] if "scale" in block else [])]
    shape = tuple(block["shape"])
    lower = block.get("layout", LAYOUT_DENSE) == LAYOUT_LOWER
    stored = (shape[0], shape[1] * (shape[1] + 1) // 2) if lower else shape
    if block["dtype"] == DTYPE:
        values: np.ndarray = np.frombuffer(bytes(parts[0]), dtype="<f4").reshape(stored)
        return _unpack_lower(values, shape) if lower else values
    if block["dtype"] == DTYPE_UINT8:
        codes = np.frombuffer(bytes(parts[0]), dtype=np.uint8).reshape(stored)
        if lower:
            codes = _unpack_lower(codes, shape)
        scales = np.frombuffer(bytes(parts[1]), dtype="<f4").reshape(shape[:2])
        dequantized: np.ndarray = codes.astype(np.float32) / np.float32(255.0) * scales[..., None]
        return dequantized
    raise ValueError(f"unknown dtype {block['dtype']!r}")


def _unpack_lower(packed: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(heads, R(R+1)/2) LAYOUT_LOWER values as (heads, R, R), zeros above the diagonal."""
    out = np.zeros(shape, packed.dtype)
    rows, cols = np.tril_indices(shape[1])  # row by row, as the rows are packed
    out[:, rows, cols] = packed
    return out


decode_layer = decode_block


def decode_topk(block: Mapping[str, Any], buffers: Sequence[Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A top-k block's (key index int32, weight float32), each (heads, queries, k); `buffers`: [index, data]."""
    index, data = (buffers[0], buffers[1]) if buffers else (block["index"], block["data"])
    shape = tuple(block["shape"])
    return (np.frombuffer(bytes(index), dtype="<i4").reshape(shape),
            np.frombuffer(bytes(data), dtype="<f4").reshape(shape))


def decode_thumbnails(kind: Kind) -> np.ndarray:
    """A meta kind's thumbnails, uint8 (layer, head, T, T)."""
    size = kind["thumbnails"]["size"]
    return np.frombuffer(kind["thumbnails"]["data"], dtype=np.uint8).reshape(kind["layers"], kind["heads"], size, size)


def decode_stats(kind: Kind) -> dict[str, np.ndarray]:
    """A streamed meta kind's statistics, float32 (layer, head) per name."""
    return {name: np.frombuffer(data, dtype="<f4").reshape(kind["layers"], kind["heads"])
            for name, data in kind.get("stats", {}).items()}


def as_base64(value: Any) -> Any:
    """`value` (a wire object, or lists and dicts of them) with every ``bytes`` as base64 text, keys in order:
    the JSON-safe form a report inlines (the renderer reads base64 wherever it reads bytes)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {key: as_base64(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_base64(item) for item in value]
    return value
