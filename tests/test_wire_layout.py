"""The lower layout of value blocks (`wire.LAYOUT_LOWER`): a causal kind's whole layers send each row's
first r + 1 cells only. Decoded, they are the dense encoding's values exactly, and eager attention
computed here from random queries and keys (plain numpy, GPT-2 and Llama shapes) to the uint8 bound."""

from __future__ import annotations

import numpy as np
import pytest

from tx_magic import Tokens, Trace, wire


def eager_attention(layers: int, heads: int, n: int, dim: int, *, causal: bool, seed: int = 0) -> np.ndarray:
    """softmax(q k^T / sqrt(d)) of random queries and keys, float32 (layers, heads, n, n), masked causally."""
    rng = np.random.default_rng(seed)
    q = rng.normal(0, 1, (layers, heads, n, dim))
    k = rng.normal(0, 1, (layers, heads, n, dim))
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(dim) * 4  # sharp rows: weights near 0 and near 1
    if causal:
        scores = np.where(np.tri(n, dtype=bool), scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return (weights / weights.sum(-1, keepdims=True)).astype(np.float32)


def trace_of(att: np.ndarray, causal: bool) -> Trace:
    n = att.shape[-1]
    masks = {"self": np.tri(n, dtype=bool)} if causal else {}
    return Trace("m", {"input": Tokens(tuple(f"t{i}" for i in range(n)))}, {"self": att}, masks=masks)


#: (layers, heads, tokens, head dim): GPT-2 small's 12 heads of 64, a Llama-like 9 heads of 64 (SmolLM2).
SHAPES = [(2, 12, 37, 64), (2, 9, 50, 64), (1, 3, 2, 8)]


@pytest.mark.parametrize(("layers", "heads", "n", "dim"), SHAPES)
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_a_causal_layer_sends_its_lower_half_and_decodes_to_the_dense_values(layers, heads, n, dim, dtype):
    att = eager_attention(layers, heads, n, dim, causal=True)
    trace = trace_of(att, causal=True)
    for layer in range(layers):
        block = wire.encode_layer(trace, "self", layer, dtype)
        dense = wire.make_block("self", layer, att[layer], dtype)
        assert block["layout"] == wire.LAYOUT_LOWER and dense["layout"] == wire.LAYOUT_DENSE
        width = 1 if dtype == wire.DTYPE_UINT8 else 4
        assert len(block["data"]) == heads * n * (n + 1) // 2 * width
        assert len(dense["data"]) == heads * n * n * width
        assert block.get("scale") == dense.get("scale")
        decoded = wire.decode_block(block)
        assert decoded.shape == (heads, n, n) and decoded.dtype == np.float32
        np.testing.assert_array_equal(decoded, wire.decode_block(dense))
        header, buffers = wire.block_parts(block)  # as a reply carries it
        assert header["layout"] == wire.LAYOUT_LOWER
        np.testing.assert_array_equal(wire.decode_block(header, buffers), decoded)
        assert (np.triu(decoded, 1) == 0).all()
        exact = att[layer]
        if dtype == wire.DTYPE:
            np.testing.assert_array_equal(decoded, exact)
        else:
            bound = exact.max(-1, keepdims=True) / 510 * (1 + 1e-5) + 1e-9
            assert (np.abs(decoded - exact) <= bound).all()


def test_the_packed_bytes_are_each_row_s_first_cells_in_order():
    att = eager_attention(1, 2, 6, 4, causal=True)
    block = wire.encode_layer(trace_of(att, causal=True), "self", 0, wire.DTYPE)
    packed = np.frombuffer(block["data"], "<f4").reshape(2, 21)
    for h in range(2):
        expected = np.concatenate([att[0, h, r, :r + 1] for r in range(6)])
        np.testing.assert_array_equal(packed[h], expected)


@pytest.mark.parametrize("pool", [2, 4, 5])
def test_a_pooled_causal_layer_is_lower_too_with_a_partial_last_tile(pool):
    att = eager_attention(1, 3, 13, 16, causal=True)
    block = wire.encode_layer(trace_of(att, causal=True), "self", 0, wire.DTYPE, pool)
    tiles = -(-13 // pool)
    padded = np.zeros((3, tiles * pool, tiles * pool), np.float32)
    padded[:, :13, :13] = att[0]
    expected = padded.reshape(3, tiles, pool, tiles, pool).max((2, 4))
    assert block["layout"] == wire.LAYOUT_LOWER and len(block["data"]) == 3 * tiles * (tiles + 1) // 2 * 4
    np.testing.assert_array_equal(wire.decode_block(block), expected)


def test_kinds_without_a_causal_mask_stay_dense():
    att = eager_attention(1, 2, 9, 8, causal=False)
    block = wire.encode_layer(trace_of(att, causal=False), "self", 0, wire.DTYPE_UINT8)
    assert block["layout"] == wire.LAYOUT_DENSE and len(block["data"]) == 2 * 9 * 9
    explicit = np.ones((9, 9), bool)
    explicit[2, 5] = False
    masked = Trace("m", {"input": Tokens(tuple("abcdefghi"))}, {"self": att}, masks={"self": explicit})
    assert wire.encode_layer(masked, "self", 0, wire.DTYPE_UINT8)["layout"] == wire.LAYOUT_DENSE
    window = wire.encode_block(trace_of(eager_attention(1, 2, 9, 8, causal=True), causal=True), "self", 0, 0, 9, 0, 9)
    assert window["layout"] == wire.LAYOUT_DENSE and len(window["data"]) == 2 * 81 * 4  # exact windows: dense


def test_the_quantized_layer_matches_quantize_of_the_whole_layer():
    att = eager_attention(1, 4, 30, 8, causal=False, seed=3)
    att[0, 1, 7] = 0.0  # an all-zero row
    codes, scale = wire.quantize(att[0])
    block = wire.make_block("self", 0, att[0], wire.DTYPE_UINT8)
    assert block["data"] == codes.tobytes() and block["scale"] == scale.astype("<f4").tobytes()


def test_lower_quantization_keeps_nan_zero_and_tiny_rows_as_the_dense_one():
    n = 300  # more rows than one band (blocks.ROWS_AT_ONCE)
    att = eager_attention(1, 2, n, 8, causal=True, seed=5)[0]
    att[0, 10, :5] = np.nan  # NaN counts as 0
    att[0, 20] = 0.0  # an all-zero row
    att[1, 250, :251] = 1e-37  # a tiny row: 255 / max overflows float32
    lower = wire.make_block("self", 0, att, wire.DTYPE_UINT8, layout=wire.LAYOUT_LOWER)
    dense = wire.make_block("self", 0, att, wire.DTYPE_UINT8)
    assert lower["scale"] == dense["scale"]
    decoded = wire.decode_block(lower)
    np.testing.assert_array_equal(decoded, wire.decode_block(dense))
    assert (decoded[0, 20] == 0).all() and (decoded[0, 10, :5] == 0).all()
    assert decoded[1, 250, 0] > 0 and (decoded[1, 250, :251] == decoded[1, 250, 0]).all()


def test_the_layout_follows_the_trace_s_mask_array():
    att = eager_attention(1, 2, 8, 4, causal=True)
    trace = trace_of(att, causal=True)
    assert wire.layer_layout(trace, "self") == wire.LAYOUT_LOWER
    assert wire.layer_nbytes(trace, "self", wire.DTYPE) == 2 * 36 * 4
    trace.masks["self"] = np.ones((8, 8), bool)  # another mask: asked again
    assert wire.layer_layout(trace, "self") == wire.LAYOUT_DENSE
    assert wire.layer_nbytes(trace, "self", wire.DTYPE) == 2 * 64 * 4
