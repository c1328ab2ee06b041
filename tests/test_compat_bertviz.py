"""`tx_magic.compat.head_view` / `model_view`: bertviz's signatures and the calls of bertviz's README, shown in
tx_magic's widget. The attention shown is compared with what bertviz itself would draw (its own
`format_attention`), on the default model's real weights."""

from __future__ import annotations

import inspect
import warnings

import bertviz
import bertviz.util
import numpy as np
import pytest
import torch
from conftest import tiny_bart
from IPython.display import HTML
from transformers import AutoModel, AutoTokenizer

import tx_magic
from tx_magic.capturing.load import default_model_path
from tx_magic.compat import CompatError, ReportPage, head_view, model_view

INPUT_TEXT = "The cat sat on the mat"


@pytest.fixture(scope="module")
def bert():
    """As bertviz's README loads its model: ``AutoModel.from_pretrained(name, output_attentions=True)`` (eager),
    here the default model's folder."""
    path = str(default_model_path())
    return AutoModel.from_pretrained(path, output_attentions=True).eval(), AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def readme(bert):
    """bertviz README's self-attention example: `outputs.attentions` (outputs[-1] is transformers 5's empty
    cross_attentions for an encoder) and the tokens."""
    model, tokenizer = bert
    inputs = tokenizer.encode(INPUT_TEXT, return_tensors="pt")
    with torch.no_grad():
        outputs = model(inputs)
    return outputs.attentions, tokenizer.convert_ids_to_tokens(inputs[0])


def bertviz_sees(attention):
    return bertviz.util.format_attention(attention).numpy()


@pytest.mark.parametrize("name", ["head_view", "model_view"])
def test_signatures_are_bertviz_s(name):
    """Every bertviz parameter, in bertviz's order (calls pass attention, tokens, sentence_b_start by position),
    with its default; display_mode's default only marks whether it was given."""
    theirs = inspect.signature(getattr(bertviz, name)).parameters
    ours = inspect.signature({"head_view": head_view, "model_view": model_view}[name]).parameters
    assert list(ours) == list(theirs)
    for p, q in zip(theirs.values(), ours.values(), strict=True):
        assert (p.kind, p.default) == (q.kind, q.default) or p.name == "display_mode"


def test_head_view_shows_exactly_what_bertviz_draws(readme):
    attention, tokens = readme
    widget = head_view(attention, tokens, html_action="widget")
    assert isinstance(widget, tx_magic.AttentionWidget)
    np.testing.assert_array_equal(widget.trace.attention(), bertviz_sees(attention))
    shown = list(widget.trace.tokens()[0])
    assert shown == [t.strip() for t in bertviz.util.format_special_chars(tokens)]
    assert widget.trace.tokens()[0].raw == tuple(tokens)


def test_view_displays_the_widget_and_returns_none(readme, monkeypatch):
    shown = []
    monkeypatch.setattr("tx_magic.compat.bertviz.display", shown.append)
    attention, tokens = readme
    assert head_view(attention, tokens) is None
    assert model_view(attention, tokens) is None
    assert len(shown) == 2 and all(isinstance(w, tx_magic.AttentionWidget) for w in shown)


def test_layer_and_heads_open_the_widget_and_the_returned_page(readme, tmp_path):
    attention, tokens = readme
    widget = head_view(attention, tokens, layer=2, heads=[3, 5], html_action="widget")
    assert (widget.layer, widget.heads) == (2, [3, 5])
    html_head_view = head_view(attention, tokens, layer=2, heads=[3, 5], html_action="return")
    assert isinstance(html_head_view, HTML) and isinstance(html_head_view, ReportPage)
    with open(tmp_path / "head_view.html", "w") as file:  # bertviz README's way of saving it
        file.write(html_head_view.data)
    page = (tmp_path / "head_view.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and '"selection":{"layer":2,"heads":[3,5]}' in page
    assert "https://" not in page and "cdnjs" not in page  # opens offline
    assert html_head_view._repr_html_().startswith("<iframe srcdoc=")  # its styles stay out of the notebook


def test_sentence_pairs_mark_text_b(bert):
    model, tokenizer = bert
    inputs = tokenizer("The cat sat on the mat", "The cat lay on the rug", return_tensors="pt")
    input_ids, token_type_ids = inputs["input_ids"], inputs["token_type_ids"]
    with torch.no_grad():
        attention = model(input_ids, token_type_ids=token_type_ids).attentions
    sentence_b_start = token_type_ids[0].tolist().index(1)
    tokens = tokenizer.convert_ids_to_tokens(input_ids[0].tolist())
    widget = model_view(attention, tokens, sentence_b_start, html_action="widget")
    assert widget.trace.sequences["input"].segment == tuple(token_type_ids[0].tolist())
    np.testing.assert_array_equal(widget.trace.attention(), bertviz_sees(attention))


def test_encoder_decoder_arguments(bert):
    _, tok = bert
    model = tiny_bart(tok.vocab_size, tok.cls_token_id)
    model.set_attn_implementation("eager")
    encoder_input_ids = tok("She sees the small elephant.", return_tensors="pt").input_ids
    decoder_input_ids = tok("Sie sieht den kleinen Elefanten.", return_tensors="pt").input_ids
    with torch.no_grad():
        outputs = model(input_ids=encoder_input_ids, decoder_input_ids=decoder_input_ids, output_attentions=True)
    encoder_text = tok.convert_ids_to_tokens(encoder_input_ids[0])
    decoder_text = tok.convert_ids_to_tokens(decoder_input_ids[0])
    widget = head_view(encoder_attention=outputs.encoder_attentions, decoder_attention=outputs.decoder_attentions,
                       cross_attention=outputs.cross_attentions, encoder_tokens=encoder_text,
                       decoder_tokens=decoder_text, html_action="widget")
    for kind in ("encoder", "decoder", "cross"):
        np.testing.assert_array_equal(widget.trace.attention(kind),
                                      bertviz_sees(getattr(outputs, f"{kind}_attentions")))
    only_cross = model_view(cross_attention=outputs.cross_attentions, encoder_tokens=encoder_text,
                            decoder_tokens=decoder_text, html_action="widget")
    assert only_cross.trace.kinds == ("cross",)


def test_arguments_tx_magic_cannot_honour_are_named(readme):
    attention, tokens = readme
    with pytest.warns(UserWarning, match="is not honoured") as caught:
        widget = model_view(attention, tokens, display_mode="light", include_layers=[4, 5], html_action="widget")
    messages = [str(w.message) for w in caught]
    assert any("model_view: display_mode is not honoured" in m for m in messages)
    assert any("include_layers is not honoured" in m and "opens on layer 4" in m for m in messages)
    assert widget.layer == 4 and widget.trace.shape()[0] == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # what it does honour says nothing
        model_view(attention, tokens, include_heads=[0, 2], html_action="widget")


@pytest.mark.parametrize(("call", "message"), [
    (lambda a, t: head_view(a), "'tokens' is required"),
    (lambda a, t: head_view(a, t, encoder_tokens=t), "may not specify any encoder-decoder"),
    (lambda a, t: head_view(), "at least one attention argument"),
    (lambda a, t: head_view(encoder_attention=a), "'encoder_tokens' required if 'encoder_attention'"),
    (lambda a, t: head_view(cross_attention=a, encoder_tokens=t), "'decoder_tokens' required if 'cross_attention'"),
    (lambda a, t: head_view(a, t, html_action="show"), "'html_action' parameter must be"),
    (lambda a, t: model_view(a, t, include_layers=[1], layer=2), None),
    (lambda a, t: head_view(a, t, layer=9), "layer must be in 0..5"),
    (lambda a, t: head_view(a, t, heads=[12]), r"heads must list heads in 0..11"),
    (lambda a, t: head_view(a, t[:-1]), "7 input tokens but the attention has 8"),
    (lambda a, t: head_view((), t), "outputs.attentions"),
    (lambda a, t: head_view(a, t, sentence_b_start=99), "sentence_b_start"),
])
def test_bad_calls_are_refused_as_bertviz_refuses_them(readme, call, message):
    attention, tokens = readme
    if message is None:  # model_view has no `layer`: bertviz would refuse the keyword too
        with pytest.raises(TypeError):
            call(attention, tokens)
        return
    with pytest.raises(ValueError, match=message) as caught:
        call(attention, tokens)
    assert isinstance(caught.value, tx_magic.TxMagicError)
    if "is required" in message or "required if" in message:
        assert isinstance(caught.value, CompatError)
