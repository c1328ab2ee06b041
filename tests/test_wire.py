"""Wire v2 (tx_magic.wire): quantized and pooled blocks, thumbnails, top-k, the eager budget at every
length, and the replies to the renderer's requests, checked against numpy on the same weights."""

from __future__ import annotations

import numpy as np
import pytest

import tx_magic
from tx_magic import Tokens, Trace, wire
from tx_magic.analysis import STAT_NAMES, streamed_stats
from tx_magic.capturing import streamed

TEXT = "the cat sat on the mat because it was tired and the dog ran " * 3


def ask(trace: Trace, type_: str, request_id: str = "r", **payload):
    """(reply, buffers): Python's answer to a request of the renderer's (`wire.rpc`)."""
    return wire.reply_to(trace, {"type": type_, "id": request_id, "payload": payload})


def content_of(answer):
    """A reply's content with its buffers, asserting it is no error."""
    reply, buffers = answer
    assert reply["type"] == wire.REPLY, reply
    return reply["content"], buffers


def softmax_trace(layers: int, heads: int, n: int, *, causal: bool = True, seed: int = 0) -> Trace:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (layers, heads, n, n))
    mask = np.tril(np.ones((n, n), bool)) if causal else np.ones((n, n), bool)
    logits = np.where(mask, logits, -np.inf)
    att = np.exp(logits - logits.max(-1, keepdims=True))
    att = (att / att.sum(-1, keepdims=True)).astype(np.float32)
    return Trace("m", {"input": Tokens(tuple(f"t{i}" for i in range(n)))}, {"self": att},
                 masks={"self": mask} if causal else {})


def pooled_reference(values: np.ndarray, pool: int) -> np.ndarray:
    """Max over pool x pool tiles by padding with zeros (weights are >= 0)."""
    h, q, k = values.shape
    r, c = -(-q // pool), -(-k // pool)
    padded = np.zeros((h, r * pool, c * pool), np.float32)
    padded[:, :q, :k] = values
    return padded.reshape(h, r, pool, c, pool).max((2, 4))


def split_max(values: np.ndarray, size: int) -> np.ndarray:
    """Max over array_split tiles, the plain way."""
    rows = np.array_split(np.arange(values.shape[-2]), size)
    cols = np.array_split(np.arange(values.shape[-1]), size)
    return np.array([[[[values[at, h][np.ix_(r, c)].max() for c in cols] for r in rows]
                      for h in range(values.shape[1])] for at in range(values.shape[0])])


# -- quantization ---------------------------------------------------------------------------------

def test_uint8_error_is_at_most_a_510th_of_the_row_max():
    rng = np.random.default_rng(1)
    values = rng.dirichlet(np.full(300, 0.05), size=(4, 50)).astype(np.float32)
    values[0, 3] = 0.0  # an all-masked row
    values[1, 4, 7] = np.nan  # a NaN counts as 0
    data, scale = wire.quantize(values)
    assert data.dtype == np.uint8 and scale.shape == (4, 50)
    block = wire.make_block("self", 0, values, wire.DTYPE_UINT8)
    decoded = wire.decode_block(block)
    clean = np.nan_to_num(values)
    np.testing.assert_allclose(scale, clean.max(-1))
    error = np.abs(decoded - clean)
    assert (error <= scale[..., None] / 510 * (1 + 1e-5) + 1e-9).all()
    assert error.max() <= 1 / 510 and error.max() > 0  # a real rounding, bounded
    assert (decoded[0, 3] == 0).all() and scale[0, 3] == 0
    assert (data.max(-1)[scale > 0] == 255).all()  # each row's max is exact


def test_uint8_whole_layer_and_pooled_layer_with_a_partial_last_tile():
    trace = softmax_trace(2, 3, 13)
    exact = trace.layer("self", 1)
    block = wire.encode_layer(trace, "self", 1, wire.DTYPE_UINT8)
    assert tuple(block) == wire.keys_of(wire.ValueBlock)  # every key, in the declared order
    assert (block["pool"], block["q0"], block["k0"], block["shape"]) == (1, 0, 0, [3, 13, 13])
    assert block["layout"] == wire.LAYOUT_LOWER and len(block["data"]) == 3 * 13 * 14 // 2  # causal: the lower half
    assert np.abs(wire.decode_block(block) - exact).max() <= exact.max() / 510 + 1e-7
    pooled = wire.encode_layer(trace, "self", 1, wire.DTYPE, pool=4)
    assert pooled["shape"] == [3, 4, 4] and pooled["pool"] == 4
    np.testing.assert_array_equal(wire.decode_block(pooled), pooled_reference(exact, 4))


def test_thumbnails_are_the_max_over_array_split_tiles_also_across_sequences():
    trace = softmax_trace(2, 2, 70, causal=False)
    meta = wire.encode_meta(trace)
    (kind,) = meta["kinds"]
    assert tuple(kind) == tuple(k for k in wire.keys_of(wire.Kind) if k in kind)  # in the declared order
    assert kind["thumbnails"]["size"] == wire.THUMBNAIL_SIZE and not kind["streamed"] and kind["pool"] == 1
    expected = np.rint(split_max(trace.attention(), 32) * 255)
    np.testing.assert_array_equal(wire.decode_thumbnails(kind), expected)
    rng = np.random.default_rng(0)
    cross = rng.random((1, 2, 5, 40)).astype(np.float32)
    t = Trace("m", {"source": Tokens(tuple("s" * 40)), "target": Tokens(tuple("t" * 5))},
              {"encoder": rng.random((1, 1, 40, 40)).astype(np.float32), "decoder": rng.random((1, 1, 5, 5)).astype(
                  np.float32), "cross": cross})
    np.testing.assert_allclose(wire.thumbnails(t, "cross"), split_max(cross, 5))


# -- the eager payload --------------------------------------------------------------------------

def test_eager_policy_steps():
    small = softmax_trace(3, 2, 10, causal=False)  # dense blocks (a causal kind's are smaller: test_wire_layout)
    assert {b["dtype"] for b in wire.eager_layers(small)} == {wire.DTYPE}
    assert len(wire.eager_layers(small)) == 3
    float32_all = 3 * 2 * 10 * 10 * 4
    uint8_all = 3 * (2 * 10 * 10 + 2 * 10 * 4)
    thumbs = wire.meta_nbytes(small)
    blocks = wire.eager_layers(small, budget=uint8_all + thumbs)
    assert [b["dtype"] for b in blocks] == [wire.DTYPE_UINT8] * 3 and uint8_all < float32_all
    one = wire.eager_layers(small, budget=uint8_all + thumbs - 1, layer=2)
    assert [(b["layer"], b["dtype"], b["pool"]) for b in one] == [(2, wire.DTYPE_UINT8, 1)]
    pooled = wire.eager_layers(small, budget=thumbs + 2 * 5 * 5 + 2 * 5 * 4, layer=1)
    assert [(b["layer"], b["pool"], b["shape"]) for b in pooled] == [(1, 2, [2, 5, 5])]


def zeros_reduced(layers: int, heads: int, q: int, k: int, tile: int, top_k: int = 8) -> streamed.ReducedAttention:
    """A streamed kind's reduction with the sizes a real capture keeps (zeros: nothing is allocated)."""
    z = lambda *shape, dtype=np.float32: np.zeros(shape, dtype)  # noqa: E731
    size = min(wire.THUMBNAIL_SIZE, q, k)
    return streamed.ReducedAttention(
        shape=(layers, heads, q, k), tile=tile, tiles=z(layers, heads, -(-q // tile), -(-k // tile)),
        top_values=z(layers, heads, q, top_k), top_index=z(layers, heads, q, top_k, dtype=np.int32),
        row_stats={name: z(layers, heads, q) for name in streamed.ROW_STATS}, lse=z(layers, heads, q),
        queries=z(layers, heads, q, 2), keys=z(layers, 1, k, 2), scaling=np.ones(layers, np.float32),
        causal=q == k, thumbnails=z(layers, heads, size, size))


def synthetic(layout: str, n: int) -> Trace:
    """A trace shaped like a real capture at n tokens: full weights while capture keeps them (<= 1024
    tokens), else reduced as a streamed capture keeps them (tile from memory.OVERVIEW_TILES)."""
    from tx_magic.capturing import memory

    def att(layers, heads, q, k):
        if n <= 1024:
            return np.zeros((layers, heads, q, k), np.float32)  # untouched zero pages: no memory
        return zeros_reduced(layers, heads, q, k, streamed.tile_for(max(q, k), memory.OVERVIEW_TILES))

    words = lambda m: Tokens(tuple(f"w{i}" for i in range(m)))  # noqa: E731
    if layout == "enc-dec":
        t = n // 2
        return Trace("m", {"source": words(n), "target": words(t)},
                     {"encoder": att(12, 12, n, n), "decoder": att(12, 12, t, t), "cross": att(12, 12, t, n)})
    layers, heads = {"12x12": (12, 12), "30x9": (30, 9)}[layout]
    return Trace("m", {"input": words(n)}, {"self": att(layers, heads, n, n)},
                 masks={"self": np.tril(np.ones((n, n), bool))})


def binary_bytes(meta: dict, blocks: list[dict]) -> int:
    total = sum(len(b[key]) for b in blocks for key in ("data", "scale", "index") if key in b)
    for kind in meta["kinds"]:
        total += len(kind["thumbnails"]["data"]) + len(kind.get("mask_data", b""))
        total += sum(len(v) for v in kind.get("stats", {}).values())
    return total


@pytest.mark.parametrize("n", [64, 256, 512, 1024, 2048, 4096, 8192])
@pytest.mark.parametrize("layout", ["12x12", "30x9", "enc-dec"])
def test_eager_payload_stays_within_the_budget_at_every_length(layout, n):
    trace = synthetic(layout, n)
    meta = wire.encode_meta(trace)
    plan = wire.eager_plan(trace, layer=3)
    blocks = [wire.encode_eager(trace, item) for item in plan]
    sent = binary_bytes(meta, blocks)
    assert sent <= wire.EAGER_BUDGET
    assert sent == wire.plan_nbytes(trace, plan) + wire.meta_nbytes(trace)  # the plan counts what is sent
    drawn = {(b["kind"], b["layer"]) for b in blocks if b["dtype"] != wire.DTYPE_TOPK}
    assert {k for k, at in drawn if at == 3} == set(trace.kinds)  # the initial layer of every kind
    for kind in meta["kinds"]:
        if kind["streamed"]:  # arcs need the top keys, the stats panel the statistics
            assert any(b["dtype"] == wire.DTYPE_TOPK and b["kind"] == kind["name"] for b in blocks)
            assert set(kind["stats"]) == set(STAT_NAMES)


def value_bytes(blocks: list[dict]) -> int:
    return sum(len(b["data"]) + len(b.get("scale", b"")) for b in blocks if b["dtype"] != wire.DTYPE_TOPK)


@pytest.mark.parametrize("n", [512, 1024, 2048, 4096])
@pytest.mark.parametrize("layout", ["12x12", "enc-dec"])
def test_when_not_every_layer_fits_the_first_view_gets_about_a_mebibyte_of_values(layout, n):
    trace = synthetic(layout, n)
    blocks = [wire.encode_eager(trace, item) for item in wire.eager_plan(trace, layer=3)]
    assert value_bytes(blocks) <= wire.FIRST_VIEW_BUDGET
    # the finest pool within the share: one pool finer would not have fit
    share = wire.FIRST_VIEW_BUDGET // len(trace.kinds)
    for b in blocks:
        if b["dtype"] != wire.DTYPE_TOPK and b["pool"] > max(2, wire.kind_pool(trace, b["kind"])):
            _, heads, q, k = trace.shape(b["kind"])
            finer = b["pool"] // 2
            rows, cols = -(-q // finer), -(-k // finer)
            layout = wire.layer_layout(trace, b["kind"])  # a causal kind's layers send their lower half
            cells = rows * (rows + 1) // 2 if layout == wire.LAYOUT_LOWER else rows * cols
            assert heads * cells + heads * rows * 4 > share


def test_gpt2_small_at_1024_tokens_sends_a_pool_4_overview_of_the_initial_layer():
    trace = synthetic("12x12", 1024)
    (item,) = wire.eager_plan(trace, layer=5)
    assert (item.kind, item.layer, item.dtype, item.pool) == ("self", 5, wire.DTYPE_UINT8, 4)
    # uint8 values of the lower triangle (causal) + a float32 scale per row
    assert wire.plan_nbytes(trace, [item]) == 12 * 256 * 257 // 2 + 12 * 256 * 4
    # without the first-view budget it is the finest pool the eager budget holds: the whole layer (6.3 MB)
    (old,) = wire.eager_plan(trace, layer=5, first_view=wire.EAGER_BUDGET)
    assert old.pool == 1


def test_the_first_view_overview_is_the_max_over_its_tiles():
    trace = softmax_trace(2, 3, 40)
    thumbs = wire.meta_nbytes(trace)
    first_view = 3 * 10 * 10 + 3 * 10 * 4  # pool 4 fits, pool 2 (3 x 20 x 20) does not; the budget fits a uint8 layer
    # the budget fits one uint8 layer (its lower half: 3 x 820 + 3 x 40 x 4), not both
    (block,) = wire.eager_layers(trace, budget=thumbs + 5_000, layer=1, first_view=first_view)
    assert (block["layer"], block["pool"], block["shape"]) == (1, 4, [3, 10, 10])
    reference = pooled_reference(trace.layer("self", 1), 4)
    assert np.abs(wire.decode_block(block) - reference).max() <= reference.max() / 510 + 1e-7


def test_a_comparisons_second_trace_keeps_the_whole_budget():
    a, b = softmax_trace(8, 12, 300, causal=False, seed=1), softmax_trace(8, 12, 300, causal=False, seed=2)
    uint8_layer = 12 * 300 * 300 + 12 * 300 * 4
    assert uint8_layer > wire.FIRST_VIEW_BUDGET and 8 * uint8_layer > wire.EAGER_BUDGET
    layers = wire.encode_comparison(tx_magic.compare(a, b))["layers"]  # B's layers are never fetched
    assert [(x["layer"], x["dtype"], x["pool"]) for x in layers] == [(0, wire.DTYPE_UINT8, 1)]
    reference = b.layer("self", 0)
    assert np.abs(wire.decode_block(layers[0]) - reference).max() <= reference.max() / 510 + 1e-7
    assert wire.eager_plan(b)[0].pool == 2  # a widget's first view would be an overview


def test_small_inputs_still_send_every_layer_whatever_the_first_view_budget():
    small = softmax_trace(3, 2, 10)
    blocks = wire.eager_layers(small, first_view=1)
    assert [(b["layer"], b["dtype"]) for b in blocks] == [(0, wire.DTYPE), (1, wire.DTYPE), (2, wire.DTYPE)]


# -- requests -------------------------------------------------------------------------------------

def test_a_timed_reply_says_how_long_the_kernel_computed_it():
    import time

    trace = softmax_trace(1, 1, 4)
    slow = {wire.REQUEST_LAYER: lambda t, p: (time.sleep(0.05), ({"position": 0}, [b"x"]))[1]}
    message = {"type": wire.REQUEST_LAYER, "id": "s", "payload": {}}
    before = time.perf_counter()
    reply, buffers = wire.reply_to(trace, message, slow, timed=True)
    took_ms = (time.perf_counter() - before) * 1000
    assert reply["type"] == wire.REPLY and buffers == [b"x"]
    assert 50 <= reply["kernel_ms"] <= took_ms
    untimed, _ = wire.reply_to(trace, message, slow)
    assert "kernel_ms" not in untimed  # the fixture and reports stay free of timings
    error, _ = wire.reply_to(trace, {"type": wire.REQUEST_LAYER, "id": "e", "payload": None}, slow, timed=True)
    assert error["type"] == wire.REPLY_ERROR and "kernel_ms" not in error


def test_layer_block_and_topk_requests_round_trip_with_their_id():
    trace = softmax_trace(2, 3, 20)
    exact = trace.layer("self", 1)
    reply, buffers = ask(trace, wire.REQUEST_LAYER, "r1", kind="self", layer=1, dtype="uint8", pool=3)
    assert reply["type"] == wire.REPLY and reply["id"] == "r1" and len(buffers) == 2
    content = reply["content"]
    assert "data" not in content and content["pool"] == 3 and content["shape"] == [3, 7, 7]
    reference = pooled_reference(exact, 3)
    assert np.abs(wire.decode_block(content, buffers) - reference).max() <= reference.max() / 510 + 1e-7
    reply, buffers = ask(trace, wire.REQUEST_BLOCK, "r2", kind="self", layer=1, q0=5, q1=9, k0=2, k1=99)
    content = reply["content"]
    assert (reply["type"], reply["id"], content["q0"], content["k0"], content["shape"]) == \
        (wire.REPLY, "r2", 5, 2, [3, 4, 18])
    np.testing.assert_array_equal(wire.decode_block(content, buffers), exact[:, 5:9, 2:])
    reply, buffers = ask(trace, wire.REQUEST_TOPK, "r3", kind="self", layer=1)
    content = reply["content"]
    assert reply["id"] == "r3" and content["dtype"] == wire.DTYPE_TOPK and content["shape"] == [3, 20, 8]
    index, values = wire.decode_topk(content, buffers)
    np.testing.assert_array_equal(values, -np.sort(-exact, -1)[..., :8])
    np.testing.assert_array_equal(np.take_along_axis(exact, index.astype(int), -1), values)


@pytest.mark.parametrize(("request_", "message"), [
    ({"kind": "cross", "layer": 0}, "no 'cross' attention"),
    ({"kind": "self", "layer": 5}, "layers 0..1"),
    ({"kind": "self", "layer": "1"}, "layer must be an integer"),
    ({"kind": "self", "layer": 0, "dtype": "float16"}, "dtype must be"),
    ({"kind": "self", "layer": 0, "pool": 0}, "pool must be at least 1"),
    ({"kind": None, "layer": 0}, "kind must be one of"),
])
def test_bad_layer_requests_get_an_error_reply(request_, message):
    reply, buffers = ask(softmax_trace(2, 1, 6), wire.REQUEST_LAYER, "x", **request_)
    assert reply["type"] == wire.REPLY_ERROR and reply["id"] == "x" and buffers == []
    assert message in reply["message"] and set(reply) == {"type", "id", "message"}  # the view knows what it asked


def test_bad_block_requests_get_an_error_reply(monkeypatch):
    trace = softmax_trace(1, 1, 40)
    window = lambda **r: ask(trace, wire.REQUEST_BLOCK, kind="self", layer=0, **r)[0]  # noqa: E731
    assert "empty or negative" in window(q0=5, q1=5, k0=0, k1=3)["message"]
    assert "empty or negative" in window(q0=-1, q1=5, k0=0, k1=3)["message"]
    assert "q1 must be an integer" in window(q0=0, q1=None, k0=0, k1=3)["message"]
    assert "k1 must be an integer" in window(q0=0, q1=1, k0=0)["message"]
    monkeypatch.setattr(wire.blocks, "MAX_BLOCK_CELLS", 100)
    reply, _ = wire.reply_to(trace, {"type": wire.REQUEST_BLOCK,  # no id: still an answer, saying why
                                     "payload": {"kind": "self", "layer": 0, "q0": 0, "q1": 11, "k0": 0, "k1": 10}})
    assert reply["type"] == wire.REPLY_ERROR and "smaller window" in reply["message"] and reply["id"] == ""
    assert window(q0=0, q1=10, k0=0, k1=10)["type"] == wire.REPLY
    assert "needs a payload object" in wire.reply_to(trace, {"type": wire.REQUEST_TOPK, "id": "p"})[0]["message"]
    assert wire.reply_to(trace, {"type": "something else", "id": "s"}) is None
    monkeypatch.setitem(wire.HANDLERS, wire.REQUEST_TOPK, lambda *_: 1 / 0)  # a bug: still an answer
    assert ask(trace, wire.REQUEST_TOPK, kind="self", layer=0)[0]["message"] == "ZeroDivisionError: division by zero"
    assert wire.reply_to(trace, ["not", "a", "request"]) is None


def test_a_layer_too_big_for_one_reply_says_which_pool_to_ask(monkeypatch):
    monkeypatch.setattr(wire.blocks, "MAX_LAYER_BYTES", 1000)
    trace = softmax_trace(1, 2, 30, causal=False)  # 7.2 KB as float32
    reply = ask(trace, wire.REQUEST_LAYER, kind="self", layer=0)[0]
    assert reply["type"] == wire.REPLY_ERROR and "ask for pool 4" in reply["message"]
    assert content_of(ask(trace, wire.REQUEST_LAYER, kind="self", layer=0, pool=4))[0]["pool"] == 4


# -- a streamed capture -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def streamed_pair(minilm):
    """The same text captured in full and streamed (overview tiles of 4 tokens)."""
    from conftest import tiny_llama

    from tx_magic.capturing import memory

    tok = minilm.tokenizer
    model = tiny_llama(tok.vocab_size)
    full = tx_magic.capture(model, tok, TEXT)
    mp = pytest.MonkeyPatch()
    mp.setattr(memory, "FULL_LIMIT", 1)
    mp.setattr(memory, "OVERVIEW_TILES", 12)
    try:
        reduced = tx_magic.capture(model, tok, TEXT)
    finally:
        mp.undo()
    assert reduced.is_streamed() and reduced.attentions["self"].tile == 4
    return full, reduced


def test_streamed_kind_meta_has_pool_thumbnails_stats_and_head_types(streamed_pair):
    full, reduced = streamed_pair
    assert streamed.THUMBNAIL_SIZE == wire.THUMBNAIL_SIZE
    (kind,) = wire.encode_meta(reduced)["kinds"]
    assert kind["streamed"] is True and kind["pool"] == 4
    np.testing.assert_allclose(wire.thumbnails(reduced, "self"), wire.thumbnails(full, "self"), atol=3e-6)
    assert np.abs(wire.decode_thumbnails(kind).astype(int)
                  - wire.decode_thumbnails(wire.encode_meta(full)["kinds"][0]).astype(int)).max() <= 1
    stats, labels = streamed_stats(reduced.attentions["self"])
    decoded = wire.decode_stats(kind)
    assert list(decoded) == list(STAT_NAMES)
    for name in STAT_NAMES:
        np.testing.assert_array_equal(decoded[name], stats[name].astype(np.float32))
    assert kind["head_types"] == labels.tolist()


def test_streamed_layers_come_pooled_and_exact_blocks_and_topk_match_the_full_capture(streamed_pair):
    full, reduced = streamed_pair
    exact = full.layer("self", 1)
    n = exact.shape[-1]
    layer1 = lambda type_, request_id="r", **r: content_of(ask(reduced, type_, request_id, kind="self", layer=1, **r))  # noqa: E731
    content, buffers = layer1(wire.REQUEST_LAYER, dtype="float32", pool=1)
    assert content["pool"] == 4  # raised to what the kind keeps
    np.testing.assert_allclose(wire.decode_block(content, buffers), pooled_reference(exact, 4), atol=3e-6)
    content, buffers = layer1(wire.REQUEST_LAYER, dtype="float32", pool=6)
    assert content["pool"] == 8
    np.testing.assert_allclose(wire.decode_block(content, buffers), pooled_reference(exact, 8), atol=3e-6)
    content, buffers = layer1(wire.REQUEST_BLOCK, "tip", q0=n - 9, q1=n, k0=0, k1=n)
    assert content["pool"] == 1
    np.testing.assert_allclose(wire.decode_block(content, buffers), exact[:, n - 9:], atol=3e-6)
    content, buffers = layer1(wire.REQUEST_TOPK)
    index, values = wire.decode_topk(content, buffers)
    np.testing.assert_allclose(values, -np.sort(-exact, -1)[..., :values.shape[-1]], atol=3e-6)
    np.testing.assert_allclose(np.take_along_axis(exact, index.astype(int), -1), values, atol=3e-6)


def test_streamed_widget_sends_the_pooled_initial_layer_and_its_top_keys(streamed_pair):
    _, reduced = streamed_pair
    w = tx_magic.show(reduced, layer=1)
    blocks = {(b["dtype"], b["layer"]) for b in w._layers}
    assert blocks == {(wire.DTYPE_TOPK, 1), (wire.DTYPE_UINT8, 1)}  # a streamed kind has no exact whole layers
    small = tx_magic.AttentionWidget(reduced, layer=1, eager_budget=wire.meta_nbytes(reduced) + 2000)
    assert (small._layers[0]["dtype"], small._layers[0]["layer"]) == (wire.DTYPE_TOPK, 1)
    assert small._layers[-1]["pool"] >= 4
