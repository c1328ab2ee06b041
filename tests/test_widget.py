"""The widget's traits, attention crossing the wire as binary blocks (eagerly or on request), and
pictures asked of the front end (save_png / save_svg), tested against a fake front end."""

from __future__ import annotations

import time

import numpy as np
import pytest
import traitlets

import tx_magic
from tx_magic import wire
from tx_magic.widget import ExportError
from tx_magic.widget import exports as widget_module


def request(type_, request_id, **payload):
    """A request as the renderer sends it."""
    return {"type": type_, "id": request_id, "payload": payload}


@pytest.fixture(scope="module")
def trace(minilm):
    return tx_magic.capture(minilm.model, minilm.tokenizer, "The cat sat on the mat.")


def test_meta_describes_tokens_and_kinds_without_values(trace):
    meta = wire.encode_meta(trace)
    assert meta["version"] == wire.WIRE_VERSION
    # no image: every other key, in the declared order (a model's trace also says what it can compute on request)
    assert tuple(meta) == (*wire.keys_of(wire.Meta)[:5], "analyses")
    assert meta["sequences"]["input"]["text"] == list(trace.tokens()[0])
    assert meta["sequences"]["input"]["special"][0] is True
    (kind,) = meta["kinds"]
    assert tuple(kind) == tuple(k for k in wire.keys_of(wire.Kind) if k in wire.Kind.__required_keys__)
    assert (kind["name"], kind["layers"], kind["heads"], kind["mask"]) == ("self", 6, 12, wire.MASK_NONE)


def test_all_layers_travel_as_exact_float32_bytes_when_small(trace):
    w = tx_magic.show(trace)
    assert [b["layer"] for b in w._layers] == list(range(6))
    for block in w._layers:
        assert tuple(block) == tuple(k for k in wire.keys_of(wire.ValueBlock) if k != "scale")  # float32: no scale
        assert isinstance(block["data"], bytes)
        np.testing.assert_array_equal(wire.decode_layer(block), trace.attention()[block["layer"]])


def test_over_budget_only_the_first_layer_is_eager_and_the_rest_is_served(trace):
    w = tx_magic.AttentionWidget(trace, eager_budget=1)
    assert [b["layer"] for b in w._layers] == [0]
    sent = []
    w.send = lambda content, buffers=None: sent.append((content, buffers))
    w._on_custom_msg(w, request(wire.REQUEST_LAYER, "a", kind="self", layer=4), [])
    reply, buffers = sent[-1]
    content = reply["content"]
    assert (reply["type"], reply["id"], content["layer"]) == (wire.REPLY, "a", 4) and "data" not in content
    assert isinstance(reply["kernel_ms"], float) and reply["kernel_ms"] >= 0  # for the renderer's link meter
    np.testing.assert_array_equal(wire.decode_layer({**content, "data": buffers[0]}), trace.attention()[4])
    w._on_custom_msg(w, request(wire.REQUEST_LAYER, "b", kind="self", layer=99), [])
    assert sent[-1][0]["type"] == wire.REPLY_ERROR and sent[-1][0]["id"] == "b" and "0..5" in sent[-1][0]["message"]
    w._on_custom_msg(w, {"type": "something else", "id": "c"}, [])
    w._on_custom_msg(w, {"type": wire.REPLY, "id": "not an export"}, [])  # a reply nobody waits for
    assert len(sent) == 2


def test_selection_traits_sync_and_validate(trace):
    w = tx_magic.show(trace, layer=2, head=7)
    state = w.get_state()
    for name in ("kind", "layer", "heads", "head", "token"):
        assert name in state
    assert (state["layer"], state["head"], state["token"]) == (2, 7, -1)
    seen = []
    w.observe(lambda change: seen.append(change["new"]), names="token")
    w.token = 3
    assert seen == [3]
    with pytest.raises(traitlets.TraitError, match=r"0\.\.5"):
        w.layer = 6


def test_causal_and_explicit_masks_on_the_wire():
    seq = tx_magic.Tokens(text=("a", "b", "c"))
    att = np.full((1, 1, 3, 3), 1 / 3, dtype=np.float32)
    causal = tx_magic.Trace("m", {"input": seq}, {"self": att}, masks={"self": np.tril(np.ones((3, 3), bool))})
    assert wire.encode_meta(causal)["kinds"][0]["mask"] == wire.MASK_CAUSAL
    explicit_mask = np.array([[1, 1, 0], [1, 1, 0], [1, 1, 0]], dtype=bool)
    explicit = tx_magic.Trace("m", {"input": seq}, {"self": att}, masks={"self": explicit_mask})
    kind = wire.encode_meta(explicit)["kinds"][0]
    assert kind["mask"] == wire.MASK_EXPLICIT
    assert np.frombuffer(kind["mask_data"], np.uint8).reshape(3, 3).tolist() == explicit_mask.astype(int).tolist()


def test_tokens_with_markup_are_plain_strings_on_the_wire(minilm):
    trace = tx_magic.capture(minilm.model, minilm.tokenizer, "<img src=x onerror=alert(1)>")
    text = wire.encode_meta(trace)["sequences"]["input"]["text"]
    assert "<" in text and "".join(text[2:4]) == "img"  # passed as data; the renderer sets textContent only


def test_switching_kind_keeps_layer_and_heads_in_range(minilm):
    from conftest import tiny_bart

    tok = minilm.tokenizer
    trace = tx_magic.capture(tiny_bart(tok.vocab_size, tok.cls_token_id), tok, "a source", target="a target")
    w = tx_magic.show(trace, kind="decoder", layer=2, head=1)  # decoder: 3 layers x 2 heads
    w.kind = "encoder"  # encoder: 2 layers x 4 heads
    assert w.layer == 1 and w.head == 1
    w.heads = [0, 1, 2, 3]
    w.head = 3
    w.kind = "cross"
    assert w.heads == [0, 1] and w.head == -1
    with pytest.raises(traitlets.TraitError, match="kind must be one of"):
        w.kind = "self"


# -- aggregate trait ------------------------------------------------------------------------------

def test_aggregate_trait_is_rollout_only_for_self_attention(minilm):
    from conftest import tiny_bart

    tok = minilm.tokenizer
    trace = tx_magic.capture(tiny_bart(tok.vocab_size, tok.cls_token_id), tok, "a source", target="a target")
    w = tx_magic.show(trace, kind="encoder")
    assert "aggregate" in w.get_state() and w.aggregate == "mean"
    w.aggregate = "rollout"
    w.kind = "cross"  # rollout is undefined across sequences: back to the mean
    assert w.aggregate == "mean"
    with pytest.raises(traitlets.TraitError, match="rollout needs self-attention"):
        w.aggregate = "rollout"


# -- save_png / save_svg with a fake front end -------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"></svg>'


@pytest.fixture
def fake_front_end(trace):
    """A widget whose sent messages are recorded instead of reaching a browser."""
    w = tx_magic.show(trace)
    w.sent = []
    w.send = lambda content, buffers=None: w.sent.append((content, buffers))
    return w


def _answer(w, request, data=None):
    """The view's reply to an export request, with the picture's bytes."""
    reply = {"type": wire.REPLY, "id": request["id"], "content": {"format": request["payload"]["format"]}}
    w._on_custom_msg(w, reply, [data] if data is not None else [])


def test_save_png_asks_the_view_and_writes_its_answer(fake_front_end, tmp_path):
    w = fake_front_end
    future = w.save_png(tmp_path / "attention.png", scale=3)
    request, _ = w.sent[-1]
    assert request["type"] == wire.REQUEST_EXPORT and request["payload"] == {"format": "png", "scale": 3}
    assert not future.done() and not (tmp_path / "attention.png").exists()
    _answer(w, request, memoryview(PNG))
    assert future.result(timeout=1) == tmp_path / "attention.png"
    assert (tmp_path / "attention.png").read_bytes() == PNG


def test_save_svg_writes_the_svg_and_ignores_a_second_view(fake_front_end, tmp_path):
    w = fake_front_end
    future = w.save_svg(str(tmp_path / "a.svg"))
    request, _ = w.sent[-1]
    assert request["payload"] == {"format": "svg"}
    _answer(w, request, SVG)
    _answer(w, request, b"<svg>a second view's answer</svg>")  # the widget was displayed twice
    assert future.result(timeout=1).read_bytes() == SVG


def test_a_views_error_fails_the_future_with_its_message(fake_front_end, tmp_path, capsys):
    w = fake_front_end
    future = w.save_png(tmp_path / "big.png")
    request, _ = w.sent[-1]
    w._on_custom_msg(w, {"type": wire.REPLY_ERROR, "id": request["id"], "message": "the PNG is 12.0 MB"}, [])
    with pytest.raises(ExportError, match=r"12\.0 MB"):
        future.result(timeout=1)
    assert not (tmp_path / "big.png").exists()
    assert "big.png not written" in capsys.readouterr().err


def test_bytes_that_are_not_the_format_are_refused(fake_front_end, tmp_path):
    w = fake_front_end
    future = w.save_png(tmp_path / "x.png")
    _answer(w, w.sent[-1][0], SVG)
    with pytest.raises(ExportError, match="not a PNG"):
        future.result(timeout=1)


def test_no_view_answering_fails_after_the_idle_timeout(fake_front_end, tmp_path, monkeypatch):
    monkeypatch.setattr(widget_module, "EXPORT_TIMEOUT", 0.3)
    future = fake_front_end.save_png(tmp_path / "never.png")
    with pytest.raises(ExportError, match=r"no view of this widget answered.*display the widget"):
        future.result(timeout=5)
    _answer(fake_front_end, fake_front_end.sent[-1][0], PNG)  # too late: ignored
    assert not (tmp_path / "never.png").exists()


def test_the_timeout_does_not_run_while_a_cell_runs(fake_front_end, tmp_path, monkeypatch):
    monkeypatch.setattr(widget_module, "EXPORT_TIMEOUT", 0.2)
    monkeypatch.setattr(widget_module.KernelActivity, "busy", True)
    monkeypatch.setattr(widget_module.KernelActivity, "watch", classmethod(lambda cls: None))
    future = fake_front_end.save_png(tmp_path / "later.png")
    time.sleep(0.5)
    assert not future.done()  # the kernel cannot read replies yet: no verdict
    _answer(fake_front_end, fake_front_end.sent[-1][0], PNG)
    assert future.result(timeout=1).exists()


def test_waiting_inside_the_cell_that_asked_is_refused(fake_front_end, tmp_path, monkeypatch):
    future = fake_front_end.save_png(tmp_path / "x.png")
    monkeypatch.setattr(widget_module.KernelActivity, "running_cell", staticmethod(lambda: True))
    with pytest.raises(ExportError, match="later cell"):
        future.result()


def test_bad_arguments_fail_at_once(fake_front_end, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fake_front_end.save_png(tmp_path / "missing" / "x.png")
    with pytest.raises(ValueError, match="scale"):
        fake_front_end.save_png(tmp_path / "x.png", scale=10)
    fake_front_end.close()
    with pytest.raises(ExportError, match="closed"):
        fake_front_end.save_svg(tmp_path / "x.svg")


def test_a_trace_too_big_to_send_whole_is_shown_pooled_and_served_in_blocks(trace):
    rows = -(-trace.shape()[2] // 2)  # at pool 2
    w = tx_magic.AttentionWidget(trace, layer=2, eager_budget=wire.meta_nbytes(trace) + 12 * rows * (rows + 4))
    (block,) = w._layers
    assert (block["layer"], block["dtype"], block["pool"], block["shape"]) == (2, wire.DTYPE_UINT8, 2, [12, rows, rows])
    sent = []
    w.send = lambda content, buffers=None: sent.append((content, buffers))
    w._on_custom_msg(w, request(wire.REQUEST_BLOCK, "tooltip", kind="self", layer=2, q0=1, q1=3, k0=0, k1=8), [])
    reply, buffers = sent[-1]
    assert reply["type"] == wire.REPLY and reply["id"] == "tooltip"
    np.testing.assert_array_equal(wire.decode_block(reply["content"], buffers), trace.attention()[2, :, 1:3, :8])
    w._on_custom_msg(w, request(wire.REQUEST_TOPK, "arcs", kind="self", layer=9), [])
    assert sent[-1][0]["type"] == wire.REPLY_ERROR and sent[-1][0]["id"] == "arcs"
