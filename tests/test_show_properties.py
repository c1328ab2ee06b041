"""Property tests of the array intake of `show()` (tx_magic.capturing.arrays and tx_magic.show).

Generated attention of every accepted form (4-d, 3-d, 2-d, 5-d with a batch of one, a list or
tuple of per-layer arrays, nested lists, a dict per kind), dtype (float16/32/64, bfloat16, ints,
bools), framework (numpy, torch with and without grad) and value (probabilities, NaN, inf,
negatives, rows that do not sum to 1), with tokens of the right and the wrong length. Each case
either gives a Trace whose attention is the input as float32, warning about NaN / negative
weights / row sums exactly when they are there, or a one-line TxMagicError; never another
exception.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tx_magic
from tx_magic import Tokens, Trace
from tx_magic.capturing.arrays import AttentionArrayError, as_layers, to_numpy, trace_from_arrays
from tx_magic.core.checks import ROW_SUM_TOLERANCE
from tx_magic.core.errors import ShapeError, TxMagicError

#: The examples each test runs (deadline off: the first examples pay torch's warm-up).
EXAMPLES = {"to_numpy": 200, "as_layers": 300, "self": 300, "per_kind": 250, "show": 300}
SETTINGS = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow]}

FLOATS = ("float16", "float32", "float64")
INTS = ("int8", "int32", "int64", "uint8")
DTYPES = (*FLOATS, *INTS, "bool")
FORMS = ("4d", "3d", "2d", "5d", "list", "tuple", "list 2d", "list 4d", "nested lists")
FRAMEWORKS = ("numpy", "torch", "torch grad", "torch bfloat16")
SEQUENCES = {"encoder": ("source", "source"), "decoder": ("target", "target"), "cross": ("target", "source")}
SPECIALS = (np.nan, np.inf, -np.inf, -0.5, -0.0, 0.0, 1.0, 2.0, 1e30)


# --- generated weights ------------------------------------------------------------------------------


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@st.composite
def weights(draw: st.DrawFn, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """An array of `shape` and `dtype`: softmax probabilities (maybe with special values poked in), or
    any values of the dtype (NaN, inf, huge, negative included)."""
    if dtype in FLOATS and draw(st.booleans()):
        logits = draw(hnp.arrays(np.float64, shape, elements=st.floats(-6, 6)))
        arr = np.array(softmax(logits) if logits.size else logits, dtype=dtype)  # 0-d stays an array
        if arr.size:
            for _ in range(draw(st.integers(0, 3))):
                at = draw(st.integers(0, arr.size - 1))
                with np.errstate(over="ignore"):  # 1e30 is inf in float16
                    arr.reshape(-1)[at] = draw(st.sampled_from(SPECIALS))
        return arr
    return draw(hnp.arrays(np.dtype(dtype), shape))


def as_float32(arr: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):  # float64 beyond float32's range becomes inf
        return arr.astype(np.float32)


def framed(arr: np.ndarray, framework: str) -> Any:
    """`arr` as the framework holds it (torch: a tensor, maybe requiring grad or in bfloat16)."""
    if framework == "numpy":
        return arr
    tensor = torch.from_numpy(arr.copy())  # a C-contiguous, writable copy (ascontiguousarray makes 0-d 1-d)
    if framework == "torch bfloat16":
        return tensor.to(torch.bfloat16)
    if framework == "torch grad" and tensor.is_floating_point():
        return tensor.requires_grad_()
    return tensor


def in_form(base: np.ndarray, form: str, framework: str) -> Any:
    """The logical (layers, heads, q, k) `base` written in `form`."""
    one = functools.partial(framed, framework=framework)
    if form == "4d":
        return one(base)
    if form == "3d":
        return one(base[0])
    if form == "2d":
        return one(base[0, 0])
    if form == "5d":
        return one(base[:, None])
    if form == "list":
        return [one(layer) for layer in base]
    if form == "tuple":
        return tuple(one(layer) for layer in base)
    if form == "list 2d":
        return [one(layer[0]) for layer in base]
    if form == "list 4d":  # transformers: (1, heads, q, k) per layer
        return [one(layer[None]) for layer in base]
    assert form == "nested lists"
    return base.tolist()


@dataclass
class Attention:
    """One kind's generated attention: what is given, and the float32 (L, H, Q, K) it stands for."""

    given: Any
    expected: np.ndarray
    form: str
    framework: str


@st.composite
def attention(draw: st.DrawFn, layers: int, heads: int, q: int, k: int) -> Attention:
    """Attention of logical shape (layers, heads, q, k) in a drawn form, dtype and framework; forms
    that need one layer or one head make it so."""
    form = draw(st.sampled_from(FORMS))
    framework = "numpy" if form == "nested lists" else draw(st.sampled_from(FRAMEWORKS))
    dtype = draw(st.sampled_from(FLOATS if framework == "torch bfloat16" else DTYPES))
    if form in ("3d", "2d"):
        layers = 1
    if form in ("2d", "list 2d"):
        heads = 1
    base = draw(weights((layers, heads, q, k), dtype))
    if framework == "torch bfloat16":  # the values bfloat16 can hold: the expected result then is exact
        base = torch.from_numpy(as_float32(base)).to(torch.bfloat16).float().numpy()
    return Attention(in_form(base, form, framework), as_float32(base), form, framework)


def dims(low: int = 1, high: int = 4) -> st.SearchStrategy[int]:
    return st.integers(low, high)


@st.composite
def shape(draw: st.DrawFn) -> tuple[int, int, int, int]:
    """(layers, heads, q, k), square nine times in ten, with one axis empty one time in ten."""
    layers, heads, q = draw(dims(1, 3)), draw(dims(1, 3)), draw(dims())
    k = q if draw(st.integers(0, 9)) else draw(dims())
    out = [layers, heads, q, k]
    if not draw(st.integers(0, 9)):
        out[draw(st.integers(0, 3))] = 0
    return out[0], out[1], out[2], out[3]


# --- the tokens given ---------------------------------------------------------------------------------

TOKEN_TEXT = st.text(max_size=3)


@st.composite
def tokens_for(draw: st.DrawFn, n: int) -> tuple[Any, bool, tuple[str, ...] | None]:
    """(tokens to give for an n-token sequence, whether they fit, the texts expected); None texts
    for numbered positions."""
    fitting = ["none", "strings", "ids", "array", "Tokens"]
    wrong = ["wrong length", "one string", "a number"]
    choice = draw(st.sampled_from(wrong if draw(st.integers(0, 4)) == 0 else fitting))  # one in five wrong
    if choice == "none":
        return None, True, tuple(str(i) for i in range(n))
    if choice == "wrong length":
        m = draw(st.integers(0, n + 1))
        m += m >= n  # any length but n
        return draw(st.lists(TOKEN_TEXT, min_size=m, max_size=m)), False, None
    if choice == "one string":
        return draw(st.text(min_size=1, max_size=n + 1)), False, None
    if choice == "a number":
        return draw(st.integers(0, 9)), False, None
    if choice == "ids":
        ids = draw(st.lists(st.integers(0, 50_000), min_size=n, max_size=n))
        return ids, True, tuple(str(i) for i in ids)
    texts = draw(st.lists(TOKEN_TEXT, min_size=n, max_size=n))
    if choice == "array":
        arr = np.array(texts)  # numpy's fixed-width strings drop trailing NULs: expect what it holds
        return arr, True, tuple(arr.tolist())
    if choice == "Tokens":
        return Tokens(tuple(texts)), True, tuple(texts)
    return texts, True, tuple(texts)


# --- the oracle -------------------------------------------------------------------------------------------


def problems(att: np.ndarray) -> dict[str, bool]:
    """Which value problems float32 weights (L, H, Q, K) have, computed here independently."""
    finite = np.isfinite(att)
    clean = np.where(finite, att, 0)
    sums = clean.sum(axis=-1, dtype=np.float64)
    return {
        "NaN or infinite": bool((~finite).any()),
        "negative": bool((clean < 0).any()),
        "do not sum to 1": bool(((np.abs(sums - 1) > ROW_SUM_TOLERANCE) & (sums != 0)).any()),
    }


def check_trace(trace: Trace, expected: dict[str, np.ndarray], warned: list[str]) -> None:
    """`trace` holds `expected` per kind as float32, and `warned` says exactly the problems they have."""
    assert trace.kinds == tuple(k for k in ("self", "encoder", "decoder", "cross") if k in expected)
    for kind, att in expected.items():
        got = trace.attention(kind)
        assert got.dtype == np.float32 and got.shape == att.shape
        np.testing.assert_array_equal(got, att, err_msg=kind)
        for problem, present in problems(att).items():
            if present:
                event(f"warns: {problem}")
            said = any(f" {kind} attention " in w and problem in w for w in warned)
            assert said == present, f"{kind}: {problem!r} present={present} but warnings={warned}"


def one_line(exc: BaseException) -> None:
    assert isinstance(exc, (AttentionArrayError, ShapeError)), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    assert message and "\n" not in message, repr(message)


def attempt(call: Any) -> tuple[Any, TxMagicError | None]:
    """`call()`'s result, or the TxMagicError it raised; any other exception fails the test."""
    try:
        result = call()
    except TxMagicError as exc:
        event(f"refused: {type(exc).__name__}")
        return None, exc
    event("accepted")
    return result, None


def expect(call: Any, works: bool, what: str) -> Any:
    """`call()`'s result where it must work; where it must not, None once its error is checked to be one line."""
    result, error = attempt(call)
    if not works:
        assert error is not None, f"accepted {what}"
        one_line(error)
        return None
    assert error is None, f"refused {what}: {error}"
    return result


# --- the properties ---------------------------------------------------------------------------------------


@st.composite
def arrays_of_any_framework(draw: st.DrawFn) -> tuple[Any, np.ndarray, str]:
    dtype = draw(st.sampled_from(DTYPES))
    base = draw(weights(draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=3)), dtype))
    how = draw(st.sampled_from(["numpy", "torch", "torch grad", "lists"]))
    if how == "lists":
        return base.tolist(), np.asarray(base.tolist()), how
    value = framed(base, how)
    widened = how != "numpy" and base.dtype.kind == "f"  # torch floats come back as float32
    return value, as_float32(base) if widened else base, how


@settings(max_examples=EXAMPLES["to_numpy"], **SETTINGS)
@given(arrays_of_any_framework())
def test_to_numpy_reads_numpy_torch_and_lists(case):
    value, expected, how = case
    arr = to_numpy(value)
    assert isinstance(arr, np.ndarray)
    if how == "numpy":
        assert arr is value
    assert arr.dtype == expected.dtype and arr.shape == expected.shape
    np.testing.assert_array_equal(arr, expected)


@st.composite
def not_attention(draw: st.DrawFn) -> Any:
    """Values `as_layers` must refuse with a one-line error."""
    case = draw(st.sampled_from(["1-d", "6-d", "5-d batch of two", "layers differ", "strings", "complex",
                                 "ragged", "empty list", "list of vectors"]))
    floats = hnp.arrays(np.float32, st.just((2, 2, 2)), elements=st.floats(0, 1, width=32))
    if case == "1-d":
        return np.ones(draw(dims()))
    if case == "6-d":
        return np.ones((1,) * 6)
    if case == "5-d batch of two":
        return np.ones((1, 2, 1, 2, 2))
    if case == "layers differ":
        return [draw(floats), draw(floats)[:1]]
    if case == "strings":
        return np.array([["a", "b"], ["c", "d"]])
    if case == "complex":
        return np.ones((2, 2), dtype=complex)
    if case == "ragged":
        return [[0.5, 0.5], [1.0]]
    if case == "empty list":
        return []
    return [np.ones(2), np.ones(2)]


@settings(max_examples=EXAMPLES["as_layers"], **SETTINGS)
@given(st.one_of(shape().flatmap(lambda s: attention(*s)), not_attention()))
def test_as_layers_gives_float32_layers_heads_queries_keys_or_one_line(case):
    layers, error = attempt(lambda: as_layers(case.given if isinstance(case, Attention) else case))
    if not isinstance(case, Attention):
        assert error is not None, f"accepted {case!r}"
        one_line(error)
        return
    if error is not None:  # only an empty axis may lose its way (nested lists drop empty axes)
        assert 0 in case.expected.shape, f"{case.form} {case.framework}: {error}"
        one_line(error)
        return
    assert layers.dtype == np.float32 and layers.ndim == 4 and layers.flags.c_contiguous
    if 0 not in case.expected.shape or case.form != "nested lists":
        assert layers.shape == case.expected.shape
        np.testing.assert_array_equal(layers, case.expected)


@st.composite
def self_attention(draw: st.DrawFn) -> tuple[Any, Any, bool, np.ndarray, tuple[str, ...] | None]:
    """(attention to give, tokens, whether it must work, the float32 weights, the token texts)."""
    layers, heads, q, k = draw(shape())
    att = draw(attention(layers, heads, q, k))
    tokens, fits, texts = draw(tokens_for(q))
    given = {"self": att.given} if draw(st.integers(0, 4)) == 0 else att.given
    if isinstance(given, dict) and draw(st.booleans()) and not isinstance(tokens, str):
        tokens = {"input": tokens}
    works = fits and q == k and 0 not in att.expected.shape
    return given, tokens, works, att.expected, texts


@settings(max_examples=EXAMPLES["self"], **SETTINGS)
@given(self_attention())
def test_trace_from_arrays_keeps_self_attention_exactly_or_says_why_in_one_line(case):
    given, tokens, works, expected, texts = case
    trace = expect(lambda: trace_from_arrays(given, tokens), works, f"{expected.shape} with tokens {tokens!r}")
    if trace is None:
        return
    check_trace(trace, {"self": expected}, trace.warnings)
    assert tuple(trace.sequences["input"]) == texts


@st.composite
def per_kind(draw: st.DrawFn) -> tuple[dict[str, Any], Any, bool, dict[str, np.ndarray]]:
    """Encoder / decoder / cross attention with tokens per sequence: (attention, tokens, whether it must
    work, the float32 weights per kind)."""
    kinds = draw(st.lists(st.sampled_from(["encoder", "decoder", "cross"]), min_size=1, max_size=3, unique=True))
    n = {"source": draw(dims()), "target": draw(dims())}
    given, expected = {}, {}
    for kind in kinds:
        q, k = (n[s] for s in SEQUENCES[kind])
        if not draw(st.integers(0, 9)):  # queries one longer than the sequence's tokens
            q += 1
        att = draw(attention(draw(dims(1, 3)), draw(dims(1, 3)), q, k))
        given[kind], expected[kind] = att.given, att.expected
    lengths: dict[str, set[int]] = {}
    for kind, att in expected.items():
        for seq, m in zip(SEQUENCES[kind], att.shape[2:], strict=True):
            lengths.setdefault(seq, set()).add(m)
    works = all(len(m) == 1 for m in lengths.values())  # every kind agrees on each sequence's length
    how = draw(st.sampled_from(["none", "per sequence", "per sequence", "a list", "one missing"]))
    tokens: Any = None
    if how == "a list":
        tokens, works = ["a"] * n[min(lengths)], False
    elif how != "none":
        tokens = {}
        for seq in sorted(lengths):  # tokens for the sequence's length (the shorter, where kinds disagree)
            tokens[seq], fits, _ = draw(tokens_for(min(lengths[seq])))
            works = works and fits
        if how == "one missing":
            del tokens[draw(st.sampled_from(sorted(lengths)))]
            works = False
    if draw(st.integers(0, 19)) == 0:  # self attention beside the other kinds, or an unknown kind
        given[draw(st.sampled_from(["self", "decoded"]))] = np.full((1, 1, 2, 2), 0.5)
        works = False
    return given, tokens, works, expected


@settings(max_examples=EXAMPLES["per_kind"], **SETTINGS)
@given(per_kind())
def test_trace_from_arrays_takes_a_dict_per_kind_or_says_why_in_one_line(case):
    given, tokens, works, expected = case
    trace = expect(lambda: trace_from_arrays(given, tokens), works, f"{sorted(given)} with tokens {tokens!r}")
    if trace is None:
        return
    check_trace(trace, expected, trace.warnings)


@settings(max_examples=EXAMPLES["show"], **SETTINGS)
@given(st.one_of(self_attention(), per_kind()))
def test_show_draws_the_arrays_and_warns_exactly_about_their_problems(case):
    given, tokens, works, expected = case[:4]
    if not isinstance(expected, dict):
        expected = {"self": expected}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        widget = expect(lambda: tx_magic.show(given, tokens), works, f"show() of tokens {tokens!r}")
    if widget is None:
        return
    said = [str(w.message) for w in caught if str(w.message).startswith("tx_magic: ")]
    assert said == [f"tx_magic: {w}" for w in widget.trace.warnings]
    check_trace(widget.trace, expected, said)


def test_the_generated_cases_add_up_to_at_least_a_thousand():
    assert sum(EXAMPLES.values()) >= 1000


@pytest.mark.parametrize("form", FORMS)
def test_every_form_is_read_as_the_same_weights(form):
    base = softmax(np.random.default_rng(1).normal(size=(1, 1, 3, 3)))
    np.testing.assert_array_equal(as_layers(in_form(base, form, "numpy")), base.astype(np.float32))
