"""Any torch.nn.Module: attention found with forward hooks (tx_magic.hooks)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import tx_magic
from tx_magic.capturing import hooks, memory, modules
from tx_magic.core.errors import NoAttentionError, TxMagicError

# --- an annotated-transformer style encoder-decoder (keeps `self.attn` after forward) --------------

class MultiHeadedAttention(nn.Module):
    def __init__(self, h: int, d_model: int) -> None:
        super().__init__()
        self.d_k, self.h = d_model // h, h
        self.linears = nn.ModuleList([nn.Linear(d_model, d_model) for _ in range(4)])
        self.attn = None

    def forward(self, query, key, value, mask=None):
        b = query.size(0)
        q, k, v = [lin(x).view(b, -1, self.h, self.d_k).transpose(1, 2)
                   for lin, x in zip(self.linears, (query, key, value), strict=False)]  # the 4th is the output
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_k)
        if mask is not None:
            scores = scores.masked_fill(mask.unsqueeze(1) == 0, -1e9)
        self.attn = scores.softmax(-1)
        x = (self.attn @ v).transpose(1, 2).reshape(b, -1, self.h * self.d_k)
        return self.linears[-1](x)


class EncoderLayer(nn.Module):
    def __init__(self, d: int, h: int) -> None:
        super().__init__()
        self.self_attn = MultiHeadedAttention(h, d)

    def forward(self, x):
        return x + self.self_attn(x, x, x)


class DecoderLayer(nn.Module):
    def __init__(self, d: int, h: int) -> None:
        super().__init__()
        self.self_attn = MultiHeadedAttention(h, d)
        self.src_attn = MultiHeadedAttention(h, d)

    def forward(self, x, memory, tgt_mask):
        x = x + self.self_attn(x, x, x, tgt_mask)
        return x + self.src_attn(x, memory, memory)


class Stack(nn.Module):
    """Token embeddings of `width`, then `layers` in turn (a layer may return (output, weights))."""

    def __init__(self, width: int, *layers: nn.Module) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, width)
        self.layers = nn.ModuleList(layers)

    def forward(self, ids):
        x = self.embed(ids)
        for layer in self.layers:
            out = layer(x)
            x = out[0] if isinstance(out, tuple) else out
        return x


class EncoderDecoder(nn.Module):
    def __init__(self, vocab: int = 20, d: int = 16, h: int = 2, layers: int = 2) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(vocab, d)
        self.encoder = nn.ModuleList([EncoderLayer(d, h) for _ in range(layers)])
        self.decoder = nn.ModuleList([DecoderLayer(d, h) for _ in range(layers + 1)])

    def forward(self, src, tgt):
        x = self.embed(src)
        for layer in self.encoder:
            x = layer(x)
        n = tgt.size(1)
        mask = torch.tril(torch.ones(1, n, n, dtype=torch.bool))
        y = self.embed(tgt)
        for layer in self.decoder:
            y = layer(y, x, mask)
        return y


def test_annotated_transformer_encoder_decoder_kinds_layers_and_exact_weights():
    model = EncoderDecoder()
    def tok(text):
        return torch.tensor([[int(w) for w in text.split()]])

    trace = tx_magic.capture(model, tok, "3 4 5 6 7", target="1 2 3")
    assert trace.kinds == ("encoder", "decoder", "cross")
    assert trace.shape("encoder") == (2, 2, 5, 5)
    assert trace.shape("decoder") == (3, 2, 3, 3)
    assert trace.shape("cross") == (3, 2, 3, 5)
    # the weights are the model's own: after the pass each module still holds its last attn
    np.testing.assert_array_equal(trace.attention("cross")[2], model.decoder[2].src_attn.attn[0].numpy())
    np.testing.assert_array_equal(trace.attention("encoder")[0], model.encoder[0].self_attn.attn[0].numpy())
    assert trace.mask("decoder").tolist() == np.tril(np.ones((3, 3), bool)).tolist()  # causal found
    assert list(trace.sequences["source"]) == ["3", "4", "5", "6", "7"]  # a lambda: tokens are ids
    assert trace.model_name == "EncoderDecoder"


def test_without_a_target_every_attention_is_self_in_module_order():
    model = Stack(8, *(EncoderLayer(8, 2) for _ in range(3)))
    trace = tx_magic.capture(model, lambda t: [1, 2, 3, 4], "anything")
    assert trace.kinds == ("self",)
    assert trace.shape() == (3, 2, 4, 4)
    for i in range(3):
        np.testing.assert_array_equal(trace.attention()[i], model.layers[i].self_attn.attn[0].numpy())


def test_nn_multiheadattention_gives_per_head_weights_and_unchanged_outputs():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=32, batch_first=True, dropout=0.0)
    model = nn.Sequential(nn.Embedding(30, 16), nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False))
    model.eval()
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with torch.inference_mode():
        before = model(ids)
    seen = []
    model[1].layers[0].self_attn.register_forward_hook(lambda m, i, o: seen.append(o[1]))
    trace = tx_magic.capture(model, lambda t: ids, "x")
    assert trace.shape() == (2, 4, 6, 6)  # per head, not averaged
    assert seen == [None]  # the caller asked for no weights and got none
    np.testing.assert_allclose(trace.attention().sum(-1), 1, atol=1e-5)
    assert not np.allclose(trace.attention()[0, 0], trace.attention()[0, 1])  # heads differ
    with torch.inference_mode():
        after = model(ids)
    torch.testing.assert_close(after, before)
    # the weights are the module's: recompute layer 0 from its input
    x = model[0](ids)
    with torch.inference_mode():
        _, w = model[1].layers[0].self_attn(x, x, x, need_weights=True, average_attn_weights=False)
    np.testing.assert_allclose(trace.attention()[0], w[0].numpy(), atol=1e-6)


def test_mha_caller_asking_for_averaged_weights_still_gets_them():
    torch.manual_seed(0)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 8)
            self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
            self.got = None

        def forward(self, ids):
            x = self.embed(ids)
            out, self.got = self.mha(x, x, x)  # defaults: need_weights=True, averaged
            return out

    model = Model()
    trace = tx_magic.capture(model, lambda t: [1, 2, 3], "x")
    assert model.got.shape == (1, 3, 3)
    np.testing.assert_allclose(model.got[0].numpy(), trace.attention()[0].mean(0), atol=1e-6)


def test_module_returning_output_and_weights():
    class Attn(nn.Module):
        def forward(self, x):
            w = (x @ x.transpose(-1, -2)).softmax(-1).unsqueeze(1).repeat(1, 3, 1, 1)
            return x, w

    trace = tx_magic.capture(Stack(4, Attn(), Attn()), lambda t: [1, 2, 3, 4, 5], "x")
    assert trace.shape() == (2, 3, 5, 5)


def test_protocol_attribute_method_and_kind_and_only_protocol_modules_are_read():
    class Reported(nn.Module):
        tx_magic_kind = "self"

        def __init__(self):
            super().__init__()
            self.inner = nn.MultiheadAttention(8, 2, batch_first=True)  # would be found without the protocol

        def forward(self, x):
            out, _ = self.inner(x, x, x)
            n = x.shape[1]
            self.tx_magic_attention = torch.eye(n).expand(1, 4, n, n)
            return out

    class ByMethod(nn.Module):
        def forward(self, x):
            self._p = torch.full((2, x.shape[1], x.shape[1]), 1 / x.shape[1])  # (heads, q, k), no batch
            return x

        def tx_magic_attention(self):
            return self._p

    trace = tx_magic.capture(Stack(8, Reported(), Reported()), lambda t: [1, 2, 3], "x")
    assert trace.shape() == (2, 4, 3, 3)
    np.testing.assert_array_equal(trace.attention()[1, 0], np.eye(3))

    trace = tx_magic.capture(Stack(8, ByMethod()), lambda t: [1, 2, 3, 4], "x")
    assert trace.shape() == (1, 2, 4, 4)
    np.testing.assert_allclose(trace.attention(), 0.25)


def test_protocol_forward_and_cross_kind_declared():
    class Cross(nn.Module):
        tx_magic_kind = "cross"

        def forward(self, q, k):
            self.tx_magic_attention = (q @ k.transpose(-1, -2)).softmax(-1)[:, None]
            return q

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 4)
            self.step = Cross()

        def forward(self, batch):  # not ids: tx_magic_forward adapts
            return self.step(self.embed(batch["tgt"]), self.embed(batch["src"]))

        def tx_magic_forward(self, src, tgt=None):
            return self({"src": src, "tgt": src if tgt is None else tgt})

    trace = tx_magic.capture(Model(), lambda t: [int(c) for c in t], "1234", target="56")
    assert trace.kinds == ("cross",)
    assert trace.shape("cross") == (1, 1, 2, 4)
    with pytest.raises(TxMagicError, match="no target"):
        tx_magic.capture(Model(), lambda t: [int(c) for c in t], "1234")


def test_tokenizer_that_decodes_shows_text_and_any_id_container_works():
    class Tok:
        vocab = ("<s>", "the", "cat", "sat")

        def __call__(self, text):
            return {"input_ids": np.array([[self.vocab.index(w) for w in text.split()]])}

        def decode(self, ids):
            return " ".join(self.vocab[i] for i in ids)

    model = EncoderDecoder(vocab=4)
    trace = tx_magic.capture(model, Tok(), "the cat sat", target="<s> the")
    assert list(trace.sequences["source"]) == ["the", "cat", "sat"]
    assert trace.sequences["source"].ids == (1, 2, 3)
    for given in ([1, 2, 3], [[1, 2, 3]], torch.tensor([1, 2, 3]), np.array([[1, 2, 3]])):
        assert modules.token_ids(given) == [1, 2, 3]
    with pytest.raises(TxMagicError, match="token ids"):
        modules.token_ids("the cat")


def test_explain_with_a_lambda_tokenizer_returns_the_widget_and_ids_need_no_tokenizer():
    model = EncoderDecoder()
    w = tx_magic.explain(model, lambda text: torch.tensor([[1, 2, 3]]), "some text", target="4 5")
    assert w.trace.kinds == ("encoder", "decoder", "cross")
    assert w._meta["sequences"]["source"]["text"] == ["1", "2", "3"]

    w = tx_magic.explain(Stack(8, EncoderLayer(8, 2)), None, ids=[3, 1, 4, 1, 5])
    assert list(w.trace.sequences["input"]) == ["3", "1", "4", "1", "5"]


def test_no_attention_found_says_what_the_protocol_is():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4))
    with pytest.raises(NoAttentionError, match="tx_magic_attention"):
        tx_magic.capture(model, lambda t: [1, 2], "x")


def test_weights_of_the_wrong_shape_are_refused_clearly():
    class Bad(nn.Module):
        def forward(self, x):
            self.tx_magic_attention = torch.ones(1, 1, 1, 3, 3)
            return x

    class Short(nn.Module):
        def forward(self, x):
            self.tx_magic_attention = torch.full((1, 2, 2, 2), 0.5)  # 2 positions for 3 tokens
            return x

    for module, message in ((Bad(), "shape"), (Short(), "2 x 2 query x key positions, but there are 3 x 3")):
        model = nn.Sequential(nn.Embedding(10, 4), module)
        with pytest.raises(hooks.AttentionShapeError, match=message):
            tx_magic.capture(model, lambda t: [1, 2, 3], "x")


def test_a_model_that_cannot_be_called_with_ids_says_how_to_fix_it():
    class NeedsTwo(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 4)

        def forward(self, ids, lengths):
            return self.embed(ids)

    with pytest.raises(TxMagicError, match="tx_magic_forward"):
        tx_magic.capture(NeedsTwo(), lambda t: [1, 2], "x")


def test_model_state_is_restored_and_no_hook_is_left():
    model = EncoderDecoder()
    model.train()
    tx_magic.capture(model, lambda t: [1, 2, 3], "x", target="1 2")
    assert model.training
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_memory_guard_refuses_before_running(monkeypatch):
    layer = nn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=32, batch_first=True)
    model = nn.Sequential(nn.Embedding(30, 16), nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False))
    monkeypatch.setattr(memory, "FULL_LIMIT", 4 * 2 * 4 * 50 * 50)
    ran = []
    model.register_forward_pre_hook(lambda *a: ran.append(1))
    with pytest.raises(memory.MemoryBudgetError, match="tokens fit"):
        tx_magic.capture(model, lambda t: [1] * 200, "x")
    assert not ran


def test_token_ids_for_a_transformers_model_match_the_text(minilm):
    text = tx_magic.capture(minilm.model, minilm.tokenizer, "The cat sat.")
    ids = list(text.sequences["input"].ids)
    by_ids = tx_magic.capture(minilm.model, minilm.tokenizer, "", ids=ids)
    assert by_ids.sequences["input"].raw == text.sequences["input"].raw  # no text: the tokenizer's own strings
    np.testing.assert_allclose(by_ids.attention(), text.attention(), atol=1e-6)
    w = tx_magic.explain(minilm.model, minilm.tokenizer, ids=ids)
    assert w.trace.sequences["input"].special[0]  # [CLS] known as special from the id


def test_a_transformers_model_that_gives_no_attentions_is_captured_with_hooks(minilm):
    import transformers as tf
    from transformers.modeling_outputs import BaseModelOutput

    class Config(tf.PretrainedConfig):
        model_type = "txm-no-attentions"

    class NoAttentions(tf.PreTrainedModel):
        config_class = Config

        def __init__(self, config):
            super().__init__(config)
            self.embed = nn.Embedding(30522, 8)
            self.mha = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, input_ids=None, **kwargs):  # ignores output_attentions
            x = self.embed(input_ids)
            return BaseModelOutput(last_hidden_state=self.mha(x, x, x, need_weights=False)[0])

    torch.manual_seed(0)
    model = NoAttentions(Config()).eval()
    trace = tx_magic.capture(model, minilm.tokenizer, "The cat sat.")  # a transformers tokenizer: falls back
    assert list(trace.sequences["input"]) == ["[CLS]", "the", "cat", "sat", ".", "[SEP]"]
    assert trace.shape() == (1, 2, 6, 6)
    np.testing.assert_allclose(trace.attention().sum(-1), 1, atol=1e-5)
    trace = tx_magic.capture(model, lambda text: [1, 2, 3, 4], "x")  # any callable tokenizer: hooks at once
    assert trace.shape() == (1, 2, 4, 4)


def test_a_transformers_model_with_a_plain_callable_tokenizer(minilm):
    trace = tx_magic.capture(minilm.model, lambda text: [101, 1996, 4937, 102], "ignored")
    want = tx_magic.capture(minilm.model, minilm.tokenizer, "the cat")
    assert trace.shape() == want.shape() == (6, 12, 4, 4)
    np.testing.assert_allclose(trace.attention(), want.attention(), atol=1e-5)


def test_torch_nn_transformer_encoder_decoder_kinds_from_module_names():
    torch.manual_seed(0)

    class Seq2Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(20, 16)
            self.transformer = nn.Transformer(d_model=16, nhead=2, num_encoder_layers=2, num_decoder_layers=3,
                                              dim_feedforward=32, batch_first=True)

        def forward(self, src, tgt):
            mask = self.transformer.generate_square_subsequent_mask(tgt.size(1))
            return self.transformer(self.embed(src), self.embed(tgt), tgt_mask=mask)

    trace = tx_magic.capture(Seq2Seq(), lambda t: [int(w) for w in t.split()], "1 2 3 4 5 6", target="7 8 9 10")
    assert trace.kinds == ("encoder", "decoder", "cross")
    assert trace.shape("encoder") == (2, 2, 6, 6)
    assert trace.shape("decoder") == (3, 2, 4, 4)
    assert trace.shape("cross") == (3, 2, 4, 6)
    assert not np.triu(trace.attention("decoder"), k=1).any()  # the causal mask was applied
