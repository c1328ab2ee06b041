"""Hostile input, through every public entry point: `tx_magic.capture` / `explain` / `show`,
`%explain`, `tx-magic report` and `save_html`.

Each case gets a clear message (a `TxMagicError` with a short text that says what to do) or a
correct view: never a crash, a traceback wall, a half-made widget or markup run from data.
The browser side of "token text is data" is tests/e2e/test_security.py.
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from conftest import smollm2_file, tiny_bart, tiny_gpt2, tiny_llama
from IPython.utils.capture import capture_output

import tx_magic
from tx_magic import Tokens, Trace, cli
from tx_magic.capturing import memory
from tx_magic.core.errors import TxMagicError
from tx_magic.report import fallback_html, render_html

HOSTILE_TAGS = ("<script>alert(1)</script>", "</script>", "<img src=x onerror=alert(1)>",
                "<svg onload=alert(1)>", "\"'><iframe src=javascript:alert(1)>")


def short(message: str, limit: int = 400) -> str:
    """A message fit for one line: short, no traceback, and not empty."""
    assert message and len(message) < limit and "Traceback" not in message, message
    return message


# -- text -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", " ", "  \n\t ", "\u3000\u2003", None], ids=["empty", "space", "whitespace",
                                                                                   "unicode-spaces", "none"])
def test_empty_text_is_refused(minilm, text):
    with pytest.raises(tx_magic.EmptyTextError) as err:
        tx_magic.capture(minilm.model, minilm.tokenizer, text)
    assert "text" in short(str(err.value))


def test_empty_pair_is_refused(minilm):
    with pytest.raises(tx_magic.EmptyTextError, match="pair"):
        tx_magic.capture(minilm.model, minilm.tokenizer, "first", pair="   ")


def test_100k_characters_are_truncated_with_a_warning(minilm):
    text = ("The quick brown fox jumps over the lazy dog. " * 2300)[:100_000]
    trace = tx_magic.capture(minilm.model, minilm.tokenizer, text)
    n = len(trace.tokens()[0])
    assert n == 512
    assert any("only the first 512" in w for w in trace.warnings)
    w = tx_magic.show(trace)
    assert len(w._meta["sequences"]["input"]["text"]) == 512


def test_100k_characters_without_a_position_limit_hit_the_memory_guard(gpt2_tokenizer, monkeypatch):
    """A model with no position limit: the memory guard, not the kernel, decides what fits."""
    model = tiny_llama(gpt2_tokenizer.vocab_size)
    model.config.max_position_embeddings = 10 ** 7
    gpt2_tokenizer.model_max_length = int(1e30)
    monkeypatch.setattr(memory, "available_bytes", lambda: 64 * 1024 ** 2)
    ran = _count_forwards(model)
    with pytest.raises(memory.MemoryBudgetError) as err:
        tx_magic.capture(model, gpt2_tokenizer, "word " * 20_000)
    assert "max_tokens=" in short(str(err.value)) and ran == [], "refused before running the model"


@pytest.mark.parametrize("text", [
    "東京は日本の首都です。北京和上海",                    # CJK
    "I ❤️ 🍕🍕 and 👨‍👩‍👧‍👦 families 🏳️‍🌈",                  # emoji, ZWJ sequences
    "e\u0301 a\u0308 n\u0303 Z\u0351\u0352\u0353\u0354\u0355",  # combining marks (and a zalgo pile)
    "مرحبا بالعالم שלום עולם",                         # right-to-left
    "abc \u202e\u2066evil\u2069\u202c def",             # bidi overrides
    "tab\there\x00nul\x07bell\x1b[31mred",              # control characters, a NUL, an ANSI escape
    "\ufeffBOM \u200b zero \u200d width",               # BOM and zero-width characters
    "𝕳𝖊𝖑𝖑𝖔 𝒘𝒐𝒓𝒍𝒅 \U0010ffff",                          # astral plane, the last code point
], ids=["cjk", "emoji", "combining", "rtl", "bidi-override", "control", "zero-width", "astral"])
def test_unusual_unicode_is_a_correct_view(minilm, text):
    trace = tx_magic.capture(minilm.model, minilm.tokenizer, text)
    w = tx_magic.show(trace)
    tokens = w._meta["sequences"]["input"]["text"]
    assert len(tokens) == trace.shape()[2] >= 3
    json.dumps(w._meta["sequences"])  # the token text crosses to the browser as valid JSON
    att = trace.attention()
    assert np.isfinite(att).all() and np.allclose(att.sum(-1), 1, atol=1e-4)


def test_lone_surrogate_is_a_clear_message_or_a_view(minilm):
    """A lone surrogate cannot be UTF-8: a message, not a crash deep in the tokenizer or JSON."""
    try:
        trace = tx_magic.capture(minilm.model, minilm.tokenizer, "bad \ud800 half")
    except TxMagicError as exc:
        error = exc
    else:
        json.dumps(tx_magic.show(trace)._meta, ensure_ascii=False).encode("utf-8")
        return
    assert "surrogate" in short(str(error)).lower() or "character" in str(error).lower()


@pytest.mark.parametrize("tag", HOSTILE_TAGS, ids=["script", "close-script", "img-onerror", "svg-onload", "iframe"])
def test_markup_tokens_stay_data_in_widget_meta(minilm, tag):
    trace = tx_magic.capture(minilm.model, minilm.tokenizer, f"before {tag} after")
    joined = "".join(tx_magic.show(trace)._meta["sequences"]["input"]["text"])
    assert "script" in joined or "onerror" in joined or "onload" in joined or "iframe" in joined


def _markup_trace() -> Trace:
    tokens = Tokens(("[CLS]", *HOSTILE_TAGS, "[SEP]"))
    n = len(tokens)
    att = np.full((2, 2, n, n), 1 / n, np.float32)
    return Trace("<img src=x onerror=alert('model')>", {"input": tokens}, {"self": att},
                 warnings=["</script><script>alert('warning')</script>"])


def _script_bodies(page: str) -> list[str]:
    return re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.S | re.I)


def test_markup_tokens_are_escaped_in_reports():
    page = render_html(_markup_trace())
    outside = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S | re.I)
    for tag in (*HOSTILE_TAGS, "onerror=alert('model')"):
        assert tag not in outside, f"{tag!r} raw in the report's markup"
    for body in _script_bodies(page):  # no data closes a script element early
        assert "</script" not in body.lower()
    assert page.lower().count("<script") == page.lower().count("</script>")


def test_markup_tokens_are_escaped_in_the_static_preview():
    preview = fallback_html(_markup_trace())
    assert "<script" not in preview.lower() and "<img src=x" not in preview and "<iframe" not in preview
    assert "&lt;script&gt;" in preview


def test_markup_text_through_the_cli_report(tmp_path, minilm):
    out = tmp_path / "r.html"
    assert cli.main(["report", "--text", "</script><img src=x onerror=alert(1)>", "-o", str(out)]) == 0
    page = out.read_text()
    for body in _script_bodies(page):
        assert "</script" not in body.lower()
    assert "<img src=x" not in re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S | re.I)


# -- values and shapes given to show() -------------------------------------------------------

def _trace(att: np.ndarray, n: int | None = None) -> Trace:
    n = att.shape[-1] if n is None else n
    return Trace("hand-made", {"input": Tokens(tuple(f"t{i}" for i in range(n)))}, {"self": att})


def _uniform(layers: int = 2, heads: int = 2, n: int = 4) -> np.ndarray:
    return np.full((layers, heads, n, n), 1 / n, np.float32)


@pytest.mark.parametrize(("value", "word"), [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite")],
                         ids=["nan", "inf", "minus-inf"])
def test_non_finite_weights_are_shown_with_a_warning(value, word):
    att = _uniform()
    att[1, 0, 2, 1] = value
    w = tx_magic.show(_trace(att))
    assert any(word in m for m in w._meta["warnings"]), w._meta["warnings"]
    assert len(w._layers) == 2


def test_negative_weights_are_shown_with_a_warning():
    att = _uniform()
    att[0, 1, 0, 0] = -0.5
    w = tx_magic.show(_trace(att))
    assert any("negative" in m for m in w._meta["warnings"]), w._meta["warnings"]


def test_rows_not_summing_to_one_are_shown_with_a_warning():
    att = np.random.default_rng(0).normal(size=(2, 2, 5, 5)).astype(np.float32) ** 2  # scores, not softmax
    w = tx_magic.show(_trace(att))
    assert any("sum to 1" in m for m in w._meta["warnings"]), w._meta["warnings"]


def test_probabilities_get_no_value_warning():
    w = tx_magic.show(_trace(_uniform()))
    assert w._meta["warnings"] == []


def test_causal_rows_summing_to_one_get_no_warning(gpt2_tokenizer):
    trace = tx_magic.capture(tiny_gpt2(), gpt2_tokenizer, "Hello there, general Kenobi")
    assert trace.warnings == []


@pytest.mark.parametrize("shape", [(4, 4), (2, 4, 4), (1, 2, 2, 4, 4)], ids=["2d", "3d", "5d"])
def test_wrong_number_of_dimensions_is_a_clear_message(shape):
    with pytest.raises(TxMagicError, match="layers, heads, queries, keys") as err:
        _trace(np.full(shape, 0.25, np.float32), n=4)
    short(str(err.value))


def test_attention_not_matching_the_tokens_is_a_clear_message():
    with pytest.raises(TxMagicError, match="tokens") as err:
        _trace(_uniform(n=4), n=5)
    short(str(err.value))


def test_unknown_kind_is_a_clear_message():
    with pytest.raises(TxMagicError, match="kind"):
        Trace("m", {"input": Tokens(("a", "b"))}, {"bogus": _uniform(n=2)})


def test_zero_tokens_is_a_clear_message():
    with pytest.raises(TxMagicError, match="token"):
        tx_magic.show(_trace(np.zeros((1, 1, 0, 0), np.float32)))


@pytest.mark.parametrize(("options", "word"), [({"layer": 9}, "layer"), ({"layer": -1}, "layer"),
                                          ({"head": 7}, "head"), ({"kind": "cross"}, "cross")],
                         ids=["layer-too-big", "layer-negative", "head-too-big", "absent-kind"])
def test_bad_show_options_are_a_clear_message(options, word):
    with pytest.raises(TxMagicError, match=word) as err:
        tx_magic.show(_trace(_uniform()), **options)
    short(str(err.value))


def test_huge_array_is_refused_before_it_is_copied(monkeypatch):
    """A float64 view of 50 GB (no memory behind it): refused with a message, never allocated."""
    monkeypatch.setattr(memory, "available_bytes", lambda: 16 * 1024 ** 3)
    huge = np.broadcast_to(np.float64(1 / 8192), (12, 12, 8192, 8192))
    with pytest.raises(memory.MemoryBudgetError) as err:
        _trace(huge)
    assert "GB" in short(str(err.value))


# -- models -----------------------------------------------------------------------------------

def test_unknown_model_is_a_clear_message():
    with pytest.raises(tx_magic.ModelLoadError) as err:
        tx_magic.explain("nobody/nothing-here", text="hi")
    short(str(err.value))


def test_not_a_model_object_is_a_clear_message(minilm):
    with pytest.raises(TxMagicError, match="int") as err:
        tx_magic.explain(42, minilm.tokenizer, "hello")
    short(str(err.value))


@pytest.fixture
def minilm_copy(tmp_path, minilm):
    """A copy of the default model's folder (tokenizer files linked, weights copied on demand)."""
    source = tx_magic.capturing.load.default_model_path()
    folder = tmp_path / "model"
    folder.mkdir()
    for f in source.iterdir():
        if f.is_file() and f.name != "model.safetensors":
            shutil.copy(f, folder / f.name)
    return source, folder


def test_broken_config_json_is_a_clear_message(minilm_copy):
    _, folder = minilm_copy
    (folder / "config.json").write_text('{"model_type": "bert", "hidden_size": ')
    with pytest.raises(tx_magic.ModelLoadError, match="config") as err:
        tx_magic.load_model(str(folder))
    short(str(err.value))


def test_unknown_model_type_is_a_clear_message(minilm_copy):
    _, folder = minilm_copy
    (folder / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(tx_magic.ModelLoadError) as err:
        tx_magic.load_model(str(folder))
    short(str(err.value))


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty"])
def test_broken_safetensors_is_a_clear_message(minilm_copy, how):
    source, folder = minilm_copy
    data = (source / "model.safetensors").read_bytes()
    broken = {"truncated": data[: len(data) // 3], "garbage": b"\x00not safetensors" * 64, "empty": b""}[how]
    (folder / "model.safetensors").write_bytes(broken)
    with pytest.raises(tx_magic.ModelLoadError) as err:
        tx_magic.load_model(str(folder))
    assert "model" in short(str(err.value), limit=600)


@pytest.mark.parametrize("keep", [0, 24, 1 << 20], ids=["empty", "header-only", "first-megabyte"])
def test_truncated_gguf_is_a_clear_message(tmp_path, monkeypatch, keep):
    monkeypatch.setenv("TX_MAGIC_CACHE", str(tmp_path / "cache"))
    with smollm2_file().open("rb") as f:
        head = f.read(keep)
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(head)
    with pytest.raises(tx_magic.ModelLoadError, match="GGUF") as err:
        tx_magic.load_model(str(broken))
    short(str(err.value), limit=600)
    assert not list((tmp_path / "cache").rglob("config.json")), "no half-converted model is left to be found"


class _NoAttention(torch.nn.Module):
    def forward(self, input_ids, **kwargs):
        return {"last_hidden_state": torch.zeros(1, input_ids.shape[1], 4)}


class _EmptyAttention(torch.nn.Module):
    def forward(self, input_ids, **kwargs):
        return {"attentions": ()}


@pytest.mark.parametrize("model", [_NoAttention(), _EmptyAttention()], ids=["no-field", "empty-tuple"])
def test_model_without_attention_is_a_clear_message(minilm, model):
    with pytest.raises(tx_magic.NoAttentionError) as err:
        tx_magic.capture(model, minilm.tokenizer, "hello")
    short(str(err.value))


def _count_forwards(model: torch.nn.Module) -> list[int]:
    ran: list[int] = []
    model.register_forward_pre_hook(lambda *_: ran.append(1))
    return ran


def _raise_in_layer(model: torch.nn.Module, error: BaseException) -> torch.utils.hooks.RemovableHandle:
    block = model.transformer.h[1] if hasattr(model, "transformer") else model.model.layers[1]

    def hook(*_):
        raise error

    return block.register_forward_pre_hook(hook)


def test_model_that_raises_is_a_clear_message_with_the_cause(gpt2_tokenizer):
    model = tiny_gpt2()
    _raise_in_layer(model, ValueError("shapes do not line up"))
    with pytest.raises(TxMagicError) as err:
        tx_magic.capture(model, gpt2_tokenizer, "Hello there")
    message = short(str(err.value))
    assert "GPT2LMHeadModel" in message and "shapes do not line up" in message
    assert isinstance(err.value.__cause__, ValueError), "the original error stays reachable"


@pytest.mark.parametrize("error", [
    RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
                 "you tried to allocate 9663676416 bytes."),
    torch.OutOfMemoryError("CUDA out of memory."),
    MemoryError(),
], ids=["cuda-oom", "cpu-allocator", "torch-oom", "memory-error"])
def test_out_of_memory_is_a_clear_message(gpt2_tokenizer, error):
    model = tiny_gpt2()
    _raise_in_layer(model, error)
    with pytest.raises(memory.MemoryBudgetError) as err:
        tx_magic.capture(model, gpt2_tokenizer, "Hello there")
    message = short(str(err.value))
    assert "memory" in message and "max_tokens" in message


def test_interrupted_capture_restores_the_model_and_the_next_works(gpt2_tokenizer):
    model = tiny_gpt2()
    model.set_attn_implementation("sdpa")
    model.train()
    hook = _raise_in_layer(model, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        tx_magic.explain(model, gpt2_tokenizer, "Hello there")
    assert model.config._attn_implementation == "sdpa" and model.training
    hook.remove()
    w = tx_magic.explain(model, gpt2_tokenizer, "Hello there")
    assert w.trace.shape() == (2, 4, 2, 2)
    assert model.config._attn_implementation == "sdpa" and model.training


def test_interrupted_streamed_capture_restores_the_model(gpt2_tokenizer, monkeypatch):
    model = tiny_llama(gpt2_tokenizer.vocab_size)
    model.set_attn_implementation("sdpa")
    real_plan = memory.plan_capture
    monkeypatch.setattr(memory, "plan_capture", lambda *a, **k: memory.Plan(memory.STREAMED, 0))
    hook = _raise_in_layer(model, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        tx_magic.capture(model, gpt2_tokenizer, "Hello there friend")
    assert model.config._attn_implementation == "sdpa" and not model.training
    hook.remove()
    monkeypatch.setattr(memory, "plan_capture", real_plan)
    assert tx_magic.capture(model, gpt2_tokenizer, "Hello there friend").shape()[0] == 2


def test_encoder_decoder_without_target_is_a_clear_message(gpt2_tokenizer):
    with pytest.raises(tx_magic.MissingTargetError):
        tx_magic.capture(tiny_bart(gpt2_tokenizer.vocab_size, 0), gpt2_tokenizer, "source text")


@pytest.mark.parametrize("max_tokens", [0, -3], ids=["zero", "negative"])
def test_bad_max_tokens_is_a_clear_message(minilm, max_tokens):
    with pytest.raises(TxMagicError, match="max_tokens"):
        tx_magic.capture(minilm.model, minilm.tokenizer, "hello", max_tokens=max_tokens)


# -- the memory guard on every path -------------------------------------------------------------

def test_default_capture_is_refused_before_running_when_memory_is_short(minilm, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 1024 ** 2)
    ran = _count_forwards(minilm.model)
    try:
        with pytest.raises(memory.MemoryBudgetError, match="max_tokens="):
            tx_magic.capture(minilm.model, minilm.tokenizer, "word " * 400)
    finally:
        minilm.model._forward_pre_hooks.clear()
    assert ran == []


def test_encoder_decoder_estimate_counts_every_kind(gpt2_tokenizer):
    model = tiny_bart(gpt2_tokenizer.vocab_size, 0)  # 2 encoder layers x 4 heads, 3 decoder layers x 2 heads
    n, t = 40, 10
    estimate = memory.encoder_decoder_bytes(model, n, t)
    weights = 4 * (2 * 4 * n * n + 3 * 2 * t * t + 3 * 2 * t * n)
    assert weights * 2 <= estimate <= weights * 4


def test_encoder_decoder_capture_is_refused_when_memory_is_short(gpt2_tokenizer, monkeypatch):
    model = tiny_bart(gpt2_tokenizer.vocab_size, 0)
    monkeypatch.setattr(memory, "available_bytes", lambda: 64 * 1024)
    ran = _count_forwards(model)
    with pytest.raises(memory.MemoryBudgetError, match="max_tokens="):
        tx_magic.capture(model, gpt2_tokenizer, "source " * 30, target="target " * 30)
    assert ran == []


# -- %explain: one line for user errors ----------------------------------------------------------

def run_magic(shell, cell: str) -> tuple[object, str]:
    with capture_output() as out:
        result = shell.run_cell(cell)
    return result, out.stdout + out.stderr


@pytest.mark.parametrize(("line", "word"), [
    ("%explain", "empty"),
    ("%explain    ", "empty"),
    ("%explain --layer abc The cat", "layer"),
    ("%explain --layer 99 The cat", "layer"),
    ("%explain --head 99 The cat", "head"),
    ("%explain --max-tokens 0 The cat", "max_tokens"),
    ("%explain --lyer 3 The cat", "--lyer"),
    ("%explain -m no_such_variable_or_model The cat", "no_such_variable_or_model"),
    ("%explain -m not_a_model -t tok The cat", "int"),
    ("%explain --save /no/such/folder/r.html The cat", "folder"),
    ("%explain -m raising_model -t tok The cat", "boom"),
], ids=["no-text", "blank-text", "layer-not-int", "layer-too-big", "head-too-big", "max-tokens-zero",
        "unknown-option", "unknown-model", "not-a-model", "unwritable-save", "model-raises"])
def test_magic_user_errors_are_one_line(shell, gpt2_tokenizer, line, word):
    model = tiny_gpt2()
    _raise_in_layer(model, RuntimeError("boom"))
    shell.user_ns.update(not_a_model=42, tok=gpt2_tokenizer, raising_model=model)
    shell.user_ns.pop("w", None)
    result, output = run_magic(shell, "w = " + line.replace("%explain", "%explain", 1))
    assert not result.success
    lines = [x for x in output.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in output, output
    assert word.lower() in output.lower(), output
    assert "w" not in shell.user_ns, "no half-made widget"


def test_magic_interrupted_leaves_no_widget_and_the_next_works(shell, gpt2_tokenizer):
    model = tiny_gpt2()
    hook = _raise_in_layer(model, KeyboardInterrupt())
    shell.user_ns.update(m=model, tok=gpt2_tokenizer)
    shell.user_ns.pop("w", None)
    result, _ = run_magic(shell, "w = %explain -m m -t tok Hello there")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert "w" not in shell.user_ns
    hook.remove()
    result, _ = run_magic(shell, "w = %explain -m m -t tok Hello there")
    assert result.success and shell.user_ns["w"].trace.shape() == (2, 4, 2, 2)


def test_magic_text_that_starts_with_a_dash_after_double_dash(shell):
    w = shell.run_line_magic("explain", "-- --layer is just text here")
    assert "layer" in w.trace.tokens()[0]


def test_magic_negative_number_is_text(shell):
    w = shell.run_line_magic("explain", "-5 degrees is cold")
    assert "5" in w.trace.tokens()[0]


# -- the command line ---------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "word"), [
    (["--text", "   "], "empty"),
    (["--text", "hi", "-m", "nobody/nothing-here"], "nothing-here"),
    (["--text", "hi", "--max-tokens", "0"], "max-tokens"),
], ids=["blank-text", "unknown-model", "max-tokens-zero"])
def test_cli_user_errors_are_one_line(tmp_path, capsys, argv, word):
    """One `error:` line, exit status 2 (argparse adds its usage lines before it for option errors)."""
    try:
        code = cli.main(["report", *argv, "-o", str(tmp_path / "r.html")])
    except SystemExit as exc:  # argparse's own option errors
        code = exc.code
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == cli.EXIT_USAGE and "Traceback" not in err, err
    assert word in lines[-1] and "error" in lines[-1] and not [x for x in lines[:-1] if "error" in x], err


# -- arrays from any framework through show(attentions, tokens) -----------------------------------

@pytest.mark.parametrize(("bad", "word"), [(np.nan, "NaN"), (-0.4, "negative"), (3.0, "sum to 1")],
                         ids=["nan", "negative", "row-sum"])
def test_show_of_arrays_warns_once_per_problem(bad, word):
    att = np.full((2, 2, 4, 4), 0.25, np.float32)
    att[1, 0, 2, 3] = bad
    with pytest.warns(UserWarning, match=word):
        w = tx_magic.show(att, list("abcd"))
    said = [m for m in w._meta["warnings"] if word in m]
    assert len(said) == 1, w._meta["warnings"]


def test_show_of_a_torch_tensor_with_inf_is_a_view_with_a_warning():
    att = torch.full((1, 2, 3, 3), 1 / 3)
    att[0, 1, 0, 0] = float("inf")
    with pytest.warns(UserWarning, match="infinite"):
        w = tx_magic.show(att, ["x", "y", "z"])
    assert w.trace.shape() == (1, 2, 3, 3)


@pytest.mark.parametrize("shape", [(2, 2, 4, 5), (2, 2, 3, 3), (7,)], ids=["not-square", "fewer-tokens", "1d"])
def test_show_of_arrays_with_the_wrong_shape_is_a_clear_message(shape):
    with pytest.raises(TxMagicError) as err:
        tx_magic.show(np.full(shape, 0.25, np.float32), list("abcd"))
    short(str(err.value))


def test_show_of_a_huge_array_is_refused_before_it_is_copied(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 16 * 1024 ** 3)
    huge = np.broadcast_to(np.float64(1 / 8192), (12, 12, 8192, 8192))  # 50 GB as float64, no memory behind it
    with pytest.raises(memory.MemoryBudgetError) as err:
        tx_magic.show(huge, [f"t{i}" for i in range(8192)])
    assert "GB" in short(str(err.value))


# -- widgets of a re-run cell are closed (memory stays flat; tests/e2e/test_reliability.py) --------

def test_rerun_cell_closes_its_previous_widgets_but_not_ones_shown_elsewhere(monkeypatch):
    from tx_magic.widget import lifecycle

    where = {"cell": ("cell-a", 1)}
    monkeypatch.setattr(lifecycle, "_running_cell", lambda: where["cell"])
    trace = _trace(_uniform())
    first, kept = tx_magic.show(trace), tx_magic.show(trace)
    where["cell"] = ("cell-b", 2)
    lifecycle.displayed(kept)  # another cell shows `kept`: its output still needs it
    where["cell"] = ("cell-a", 3)  # cell a runs again
    again = tx_magic.show(trace)
    assert first.comm is None, "the previous run's widget is closed"
    assert kept.comm is not None and again.comm is not None
    where["cell"] = ("cell-a", 3)
    same_run = tx_magic.show(trace)
    assert again.comm is not None and same_run.comm is not None, "widgets of one run stay open"
