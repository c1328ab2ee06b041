"""Property-based round trips of the wire (hypothesis): encode -> decode gives back what the schema
promises over generated shapes and values, NaN, zeros, tiny and subnormal rows included.

- float32 blocks are exact, bit for bit (NaN stays NaN);
- uint8 blocks are within the row's max / 510 (NaN counts as 0), and each row's max is its scale;
- pooled layers are the max over each pool x pool tile (NaN ignored, the last tiles partial), as
  float32 exactly and as uint8 within the bound;
- top-k blocks hold each row's k largest weights, largest first, and the keys that have them.

1200 generated cases in all (MAX_EXAMPLES x 4), no deadline (a loaded machine must not fail them).
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tx_magic import Tokens, Trace, wire

MAX_EXAMPLES = 300
PROPERTY = settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: float32's own rounding on top of the stated bound: relative, and one subnormal step.
RELATIVE, SUBNORMAL = 1e-4, np.float32(2.0 ** -149)
#: Factors a whole row is scaled by: as is, small, near float32's smallest normal, subnormal, zero.
ROW_SCALES = (1.0, 1e-20, 1e-37, 1e-40, 1e-44, 0.0)


@st.composite
def weights(draw: st.DrawFn, nan: bool = True, max_side: int = 13) -> np.ndarray:
    """(heads, rows, columns) float32 in [0, 1], some rows scaled tiny or to zero, NaN here and there."""
    heads, rows, cols = draw(st.integers(1, 3)), draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    cells = st.one_of(st.floats(0, 1, width=32), st.just(0.0), st.just(1.0),
                      st.floats(0, float(np.float32(1e-36)), width=32, allow_subnormal=True),
                      *([st.just(float("nan"))] if nan else []))
    values = draw(hnp.arrays(np.float32, (heads, rows, cols), elements=cells))
    factors = draw(hnp.arrays(np.float32, (heads, rows, 1), elements=st.sampled_from(ROW_SCALES)))
    return (values * factors).astype(np.float32)


def within_the_uint8_bound(decoded: np.ndarray, exact: np.ndarray) -> None:
    clean = np.nan_to_num(exact, nan=0.0)
    scale = np.fmax.reduce(clean, axis=-1, keepdims=True)
    error = np.abs(decoded.astype(np.float64) - clean.astype(np.float64))
    assert (error <= scale / 510 * (1 + RELATIVE) + SUBNORMAL).all(), float((error - scale / 510).max())


def tiles_max(values: np.ndarray, pool: int) -> np.ndarray:
    """Max over pool x pool tiles, NaN ignored (all-NaN tiles stay NaN), the plain way."""
    heads, q, k = values.shape
    out = np.empty((heads, -(-q // pool), -(-k // pool)), np.float32)
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            tile = values[:, i * pool:(i + 1) * pool, j * pool:(j + 1) * pool]
            out[:, i, j] = np.fmax.reduce(tile.reshape(heads, -1), axis=-1)
    return out


def trace_of(values: np.ndarray) -> Trace:
    n_q, n_k = values.shape[1:]
    if n_q == n_k:
        return Trace("m", {"input": Tokens(tuple(f"t{i}" for i in range(n_q)))}, {"self": values[None]})
    return Trace("m", {"source": Tokens(tuple(f"s{i}" for i in range(n_k))),
                       "target": Tokens(tuple(f"t{i}" for i in range(n_q)))},
                 {"encoder": np.zeros((1, 1, n_k, n_k), np.float32), "decoder": np.zeros((1, 1, n_q, n_q), np.float32),
                  "cross": values[None]})


@PROPERTY
@given(weights())
def test_float32_blocks_come_back_bit_for_bit(values):
    block = wire.make_block("self", 0, values, wire.DTYPE)
    decoded = wire.decode_block(block)
    assert decoded.dtype == np.float32 and decoded.shape == values.shape
    np.testing.assert_array_equal(decoded.view(np.uint32), values.view(np.uint32))
    header, buffers = wire.block_parts(block)  # as a reply carries it
    np.testing.assert_array_equal(wire.decode_block(header, buffers).view(np.uint32), values.view(np.uint32))


@PROPERTY
@given(weights())
def test_uint8_blocks_are_within_a_510th_of_the_row_max(values):
    block = wire.make_block("self", 0, values, wire.DTYPE_UINT8)
    decoded = wire.decode_block(block)
    within_the_uint8_bound(decoded, values)
    scale = np.frombuffer(block["scale"], "<f4").reshape(values.shape[:2])
    np.testing.assert_array_equal(scale, np.fmax.reduce(np.nan_to_num(values, nan=0.0), axis=-1))
    codes = np.frombuffer(block["data"], np.uint8).reshape(values.shape)
    assert (codes.max(-1)[scale > 0] == 255).all()  # each row's max is exact
    assert (codes[scale == 0] == 0).all()
    header, buffers = wire.block_parts(block)
    np.testing.assert_array_equal(wire.decode_block(header, buffers), decoded)


@PROPERTY
@given(weights(), st.integers(2, 6), st.sampled_from([wire.DTYPE, wire.DTYPE_UINT8]))
def test_pooled_layers_are_the_max_over_each_tile(values, pool, dtype):
    trace = trace_of(values)
    kind = trace.kinds[-1]
    block = wire.encode_layer(trace, kind, 0, dtype, pool)
    expected = tiles_max(values, pool)
    assert (block["pool"], block["shape"]) == (pool, list(expected.shape))
    if dtype == wire.DTYPE:
        np.testing.assert_array_equal(wire.decode_block(block), expected)
    else:
        within_the_uint8_bound(wire.decode_block(block), expected)


@PROPERTY
@given(weights(max_side=10), st.integers(1, 10))
def test_topk_blocks_hold_each_rows_largest_weights_and_their_keys(values, k):
    trace = trace_of(values)
    kind = trace.kinds[-1]
    index, top = wire.decode_topk(wire.encode_topk(trace, kind, 0, k))
    clean = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    kept = min(k, values.shape[-1])
    assert index.shape == top.shape == (*values.shape[:2], kept)
    np.testing.assert_array_equal(top, -np.sort(-clean, axis=-1)[..., :kept])
    np.testing.assert_array_equal(np.take_along_axis(clean, index.astype(np.intp), -1), top)
    assert (np.diff(top, axis=-1) <= 0).all()  # largest first
    assert all(len(set(row)) == kept for row in index.reshape(-1, kept))  # distinct keys per row
