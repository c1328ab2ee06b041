"""Widgets that rerun their model: explain(ablate=, edit=, patch=), the renderer's ablate / edit / restore
requests and w.ablate / w.edit / w.restore replace the data traits with the intervened run (equal to
capture(..., ablate=) of the same input), keep the selection, carry the unintervened logits for the
Next token tab, refuse bad requests in one line and leave the model as it was; the magic's flags."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
import torch
import transformers as tf
from IPython.core.error import UsageError
from test_wire_in_step import conforms

import tx_magic
from tx_magic import wire
from tx_magic.capturing import interventions
from tx_magic.core.errors import OptionError

CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPT = "When Mary and John went to the store, Mary gave a drink to"


def model() -> tf.GPT2LMHeadModel:
    torch.manual_seed(0)
    return tf.GPT2LMHeadModel(tf.GPT2Config(n_layer=2, n_head=4, n_embd=32, n_positions=64,
                                            initializer_range=0.3)).eval()


def request(type_: str, request_id: str, **payload):
    return {"type": type_, "id": request_id, "payload": payload}


def front_end(w):
    """Collect what the widget sends the renderer."""
    w.sent = []
    w.send = lambda content, buffers=None: w.sent.append((content, buffers))
    return w


def ask(w, message):
    w._on_custom_msg(w, message, [])
    return w.sent[-1][0]


def baseline_logits(w) -> np.ndarray:
    return np.frombuffer(w._reruns["baseline"]["data"], "<f4")


def test_explain_ablated_shows_the_ablated_run_and_keeps_the_models_own_for_before_and_after(gpt2_tokenizer):
    m = model()
    w = tx_magic.explain(m, gpt2_tokenizer, CLEAN, ablate=[(1, 2), (0, 3)], ablation="mean")
    direct = tx_magic.capture(m, gpt2_tokenizer, CLEAN, ablate=[(0, 3), (1, 2)], ablation="mean")
    own = tx_magic.capture(m, gpt2_tokenizer, CLEAN)
    np.testing.assert_array_equal(w.trace.internals.last_logits, direct.internals.last_logits)
    np.testing.assert_array_equal(baseline_logits(w), own.internals.last_logits)
    assert w._meta["intervention"]["label"] == "ablated (mean): L0H3, L1H2"
    assert w.intervention == direct.intervention
    conforms(w._meta, wire.Meta, "_meta")
    conforms(w._reruns, wire.Reruns, "_reruns")
    assert tx_magic.show(own)._reruns == {}  # a widget from a trace cannot rerun


def test_the_renderers_requests_rerun_and_replace_the_data_keeping_the_selection(gpt2_tokenizer):
    m = model()
    w = front_end(tx_magic.explain(m, gpt2_tokenizer, CLEAN))
    w.layer, w.head, w.token = 1, 2, 5
    assert "baseline" not in w._reruns and "intervention" not in w._meta
    reply = ask(w, request(wire.REQUEST_ABLATE, "a", heads=[{"kind": "self", "layer": 0, "head": 1}], ablation="zero"))
    assert reply.pop("kernel_ms") > 0  # a rerun takes a while: the link meter must not count it as transfer
    assert reply == {"type": wire.REPLY, "id": "a", "content": {"label": "ablated: L0H1"}}
    direct = tx_magic.capture(m, gpt2_tokenizer, CLEAN, ablate=[(0, 1)])
    own = tx_magic.capture(m, gpt2_tokenizer, CLEAN)
    np.testing.assert_array_equal(w.trace.internals.last_logits, direct.internals.last_logits)
    assert w._meta["intervention"]["ablate"] == [{"kind": "self", "layer": 0, "head": 1}]
    np.testing.assert_array_equal(baseline_logits(w), own.internals.last_logits)
    assert (w.layer, w.head, w.token) == (1, 2, 5)
    block = next(b for b in w._layers if (b["kind"], b["layer"], b["dtype"]) == ("self", 1, wire.DTYPE))
    np.testing.assert_array_equal(wire.decode_block(block), direct.layer("self", 1))  # what the views draw
    assert np.abs(direct.layer("self", 1) - own.layer("self", 1)).max() > 1e-3
    reply = ask(w, request(wire.REQUEST_EDIT, "e", edits=[{"kind": "self", "layer": 0, "head": 1, "query": 6, "key": 2,
                                                           "weight": 0.0}]))
    assert reply["content"]["label"] == "ablated: L0H1 · edited: L0H1 6→2 = 0"  # the ablation is kept
    assert w.trace.attention()[0, 1, 6, 2] == 0
    reply = ask(w, request(wire.REQUEST_RESTORE, "r"))
    assert reply["content"] == {"label": ""} and w.intervention is None
    assert "intervention" not in w._meta and "baseline" not in w._reruns


@pytest.mark.parametrize(("payload", "words"), [
    ({"heads": [{"kind": "self", "layer": 2, "head": 0}], "ablation": "zero"}, "head (2, 0) is out of range"),
    ({"heads": [{"kind": "self", "layer": 0, "head": 0}], "ablation": "half"}, "ablation must be one of"),
    ({"heads": "all"}, "heads must be a list of objects"),
    ({"heads": [{"layer": 0, "head": 0}]}, "needs its attention kind"),
])
def test_a_request_that_cannot_be_done_is_an_error_reply_and_the_run_shown_stays(gpt2_tokenizer, payload, words):
    w = front_end(tx_magic.explain(model(), gpt2_tokenizer, CLEAN, ablate=[(0, 0)]))
    shown, meta = w.trace, dict(w._meta)
    reply = ask(w, request(wire.REQUEST_ABLATE, "x", **payload))
    assert reply["type"] == wire.REPLY_ERROR and words in reply["message"] and "\n" not in reply["message"]
    assert w.trace is shown and w._meta == meta


def test_a_blocked_masked_key_is_an_error_reply(gpt2_tokenizer):
    w = front_end(tx_magic.explain(model(), gpt2_tokenizer, CLEAN))
    reply = ask(w, request(wire.REQUEST_EDIT, "x", edits=[{"kind": "self", "layer": 0, "head": 0, "query": 2, "key": 5,
                                                           "weight": 0.5}]))
    assert reply["type"] == wire.REPLY_ERROR and "cannot attend to key 5" in reply["message"]


def state(m) -> tuple:
    hooks = [(len(x._forward_hooks), len(x._forward_pre_hooks)) for x in m.modules()]
    return m.config._attn_implementation, m.training, hooks, [x for x in m.modules() if "forward" in x.__dict__]


def test_ctrl_c_during_a_rerun_leaves_the_model_and_the_widget_as_they_were(gpt2_tokenizer, monkeypatch):
    m = model()
    w = front_end(tx_magic.explain(m, gpt2_tokenizer, CLEAN))
    m.train()
    before, shown = state(m), w.trace

    def interrupt(*_a):
        raise KeyboardInterrupt

    monkeypatch.setattr(interventions.Ablate, "on_output", interrupt)
    with pytest.raises(KeyboardInterrupt):
        w._on_custom_msg(w, request(wire.REQUEST_ABLATE, "a", heads=[{"kind": "self", "layer": 0, "head": 0}],
                                    ablation="zero"), [])
    assert state(m) == before and w.trace is shown and "intervention" not in w._meta
    monkeypatch.undo()
    w.ablate([(0, 0)])  # and it works after
    assert w.intervention is not None and state(m) == before


def test_python_ablates_edits_and_restores_too(gpt2_tokenizer):
    m = model()
    w = tx_magic.explain(m, gpt2_tokenizer, CLEAN)
    w.ablate([(1, 1)], ablation="mean")
    assert w.intervention.label() == "ablated (mean): L1H1"
    w.edit([(0, 2, 4, 1, 0.0)])
    assert w.intervention.label() == "ablated (mean): L1H1 · edited: L0H2 4→1 = 0"
    w.restore()
    assert w.intervention is None
    with pytest.raises(OptionError, match="this widget cannot ablate heads: it was made from a trace"):
        tx_magic.show(w.trace).ablate([(0, 0)])


def test_explain_patch_adds_exact_and_gradient_effects(gpt2_tokenizer):
    m = model()
    w = tx_magic.explain(m, gpt2_tokenizer, CLEAN, patch=CORRUPT, answer=" Mary", wrong=" John")
    info = w._patching
    conforms(info, wire.PatchingInfo, "_patching")
    assert [r["method"] for r in info["results"]] == ["exact", "gradient"]
    exact = tx_magic.patch(m, gpt2_tokenizer, CLEAN, CORRUPT, answer=" Mary", wrong=" John")
    np.testing.assert_allclose(np.frombuffer(info["results"][0]["effects"], "<f4").reshape(2, 4), exact.effects,
                               rtol=1e-5, atol=1e-6)
    assert (info["rows"], info["cols"], info["columns"]) == (2, 4, ["0", "1", "2", "3"])
    gradient = tx_magic.patch(m, gpt2_tokenizer, CLEAN, CORRUPT, answer=" Mary", wrong=" John", method="gradient")
    assert info["correlation"] == pytest.approx(exact.correlation(gradient))
    shown = exact.show(gradient)
    assert shown._patching["results"][1]["method"] == "gradient" and shown.trace.tokens()[0].text == exact.tokens
    positions = tx_magic.explain(m, gpt2_tokenizer, CLEAN, patch=CORRUPT, answer=" Mary", by="position")._patching
    assert positions["columns"] == list(exact.tokens) and positions["cols"] == len(exact.tokens)


def test_generation_and_interventions_do_not_mix(gpt2_tokenizer):
    with pytest.raises(OptionError, match="not with generate"):
        tx_magic.explain(model(), gpt2_tokenizer, CLEAN, generate=2, ablate=[(0, 0)])


def test_the_magic_ablates_edits_and_patches(shell, gpt2_tokenizer):
    shell.user_ns.update(ioi_model=model(), ioi_tok=gpt2_tokenizer)
    w = shell.run_line_magic("explain", f"-m ioi_model -t ioi_tok --ablate 1.2,0.3 --ablation mean {CLEAN}")
    assert w.intervention.label() == "ablated (mean): L0H3, L1H2" and len(w.trace.tokens()[0]) == 14
    w = shell.run_line_magic("explain", f"-m ioi_model -t ioi_tok --edit 1.2.5.0=0,1.2.6.1=0.5 {CLEAN}")
    assert w.intervention.edit == (("self", 1, 2, 5, 0, 0.0), ("self", 1, 2, 6, 1, 0.5))
    w = shell.run_line_magic("explain", f'-m ioi_model -t ioi_tok --patch "{CORRUPT}" --answer " Mary" --wrong " John" '
                                        f"{CLEAN}")
    assert w._patching["metric"] == "logit(' Mary') - logit(' John')"
    assert len(w._patching["corrupted"]) == 14 and w._patching["results"][0]["method"] == "exact"


@pytest.mark.parametrize(("line", "words"), [
    ("--ablate 5 text", "--ablate takes LAYER.HEAD pairs"),
    ("--ablate 9.0 text", "head (9, 0) is out of range"),
    ("--edit 1.2.3=0 text", "--edit takes LAYER.HEAD.QUERY.KEY=WEIGHT"),
    ('--answer " Mary" text', "--answer and --wrong go with --patch"),
    ('--patch "a b c d e f" --answer " Mary" one', "clean is 1 tokens and corrupted 6 tokens"),
])
def test_the_magic_says_what_is_wrong_in_one_line(shell, gpt2_tokenizer, line, words):
    shell.user_ns.update(ioi_model=model(), ioi_tok=gpt2_tokenizer)
    with pytest.raises(UsageError) as err:
        shell.run_line_magic("explain", f"-m ioi_model -t ioi_tok {line}")
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_report_of_an_ablated_patched_run_carries_the_banner_and_the_effects(gpt2_tokenizer, tmp_path):
    w = tx_magic.explain(model(), gpt2_tokenizer, CLEAN, ablate=[(1, 3)], patch=CORRUPT, answer=" Mary")
    html = w.save_html(tmp_path / "ablated.html").read_text()
    data = json.loads(re.search(r'<script type="application/json" id="txm-trace-0">(.*?)</script>', html, re.S)[1])
    assert data["meta"]["intervention"]["label"] == "ablated: L1H3"
    assert [r["method"] for r in data["patching"]["results"]] == ["exact", "gradient"]
    effects = np.frombuffer(base64.b64decode(data["patching"]["results"][0]["effects"]), "<f4")
    np.testing.assert_array_equal(effects, np.frombuffer(w._patching["results"][0]["effects"], "<f4"))
    plain = tx_magic.save_html(w.trace, tmp_path / "plain.html").read_text()
    assert '"patching"' not in plain  # a trace alone has no effects
