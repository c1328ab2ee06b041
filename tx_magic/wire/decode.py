"""Decoding what the wire carries back into arrays (tests and reports; the renderer has its own, js/src/wire.ts)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .schema import DTYPE, DTYPE_UINT8


def decode_block(block: dict[str, Any], buffers: list[Any] | None = None) -> np.ndarray:
    """A value block's values as float32 (heads, rows, columns); uint8 dequantized.

    `buffers`: a reply's buffers ([data] or [data, scale]) when the block came as a message.
    """
    if buffers:
        block = {**block, "data": buffers[0], **({"scale": buffers[1]} if len(buffers) > 1 else {})}
    shape = tuple(block["shape"])
    if block["dtype"] == DTYPE:
        return np.frombuffer(bytes(block["data"]), dtype="<f4").reshape(shape)
    if block["dtype"] == DTYPE_UINT8:
        data = np.frombuffer(bytes(block["data"]), dtype=np.uint8).reshape(shape).astype(np.float32)
        scale = np.frombuffer(bytes(block["scale"]), dtype="<f4").reshape(shape[:2])
        return data / np.float32(255.0) * scale[..., None]
    raise ValueError(f"unknown dtype {block['dtype']!r}")


decode_layer = decode_block


def decode_topk(block: dict[str, Any], buffers: list[Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A top-k block's (key index int32, weight float32), each (heads, queries, k)."""
    if buffers:
        block = {**block, "index": buffers[0], "data": buffers[1]}
    shape = tuple(block["shape"])
    return (np.frombuffer(bytes(block["index"]), dtype="<i4").reshape(shape),
            np.frombuffer(bytes(block["data"]), dtype="<f4").reshape(shape))


def decode_thumbnails(kind: dict[str, Any]) -> np.ndarray:
    """A meta kind's thumbnails, uint8 (layer, head, T, T)."""
    size = kind["thumbnails"]["size"]
    return np.frombuffer(bytes(kind["thumbnails"]["data"]), dtype=np.uint8).reshape(kind["layers"], kind["heads"],
                                                                                   size, size)


def decode_stats(kind: dict[str, Any]) -> dict[str, np.ndarray]:
    """A streamed meta kind's statistics, float32 (layer, head) per name."""
    return {name: np.frombuffer(bytes(data), dtype="<f4").reshape(kind["layers"], kind["heads"])
            for name, data in kind.get("stats", {}).items()}
