"""Generation: `--generate N` continues the prompt, captures the whole sequence in one pass and
marks the generated tokens; each step's attention row is what the model computed at that step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_gpt2, tiny_llama
from IPython.core.error import UsageError

import tx_magic
from tx_magic import wire
from tx_magic.capturing.generate import GenerationError, capture_generation

PROMPT = "The cat sat on the"


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request, gpt2_tokenizer):
    return tiny_gpt2() if request.param == "gpt2" else tiny_llama(len(gpt2_tokenizer))


def test_generated_tokens_are_model_generate_greedy(model, gpt2_tokenizer):
    trace = capture_generation(model, gpt2_tokenizer, PROMPT, 6)
    ids = gpt2_tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        expected = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                                  pad_token_id=gpt2_tokenizer.eos_token_id)[0].tolist()
    assert list(trace.sequences["input"].ids) == expected
    gen = trace.generation
    assert (gen.prompt_length, gen.steps, gen.sample) == (ids.shape[1], 6, False)
    assert list(gen.new_ids) == expected[ids.shape[1]:]
    assert trace.shape()[2] == len(expected)


def test_each_steps_attention_row_equals_a_step_by_step_run_with_kv_cache(model, gpt2_tokenizer):
    trace = capture_generation(model, gpt2_tokenizer, PROMPT, 5)
    ids = list(trace.sequences["input"].ids)
    p = trace.generation.prompt_length
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model(torch.tensor([ids[:p]]), use_cache=True, output_attentions=True)
            past = out.past_key_values
            for t in range(p, len(ids)):
                out = model(torch.tensor([[ids[t]]]), past_key_values=past, use_cache=True, output_attentions=True)
                past = out.past_key_values
                for layer, att in enumerate(out.attentions):
                    np.testing.assert_allclose(trace.attention()[layer, :, t, :t + 1], att[0, :, 0].numpy(),
                                               rtol=1e-4, atol=1e-6)
                    assert not trace.attention()[layer, :, t, t + 1:].any()
    finally:
        model.set_attn_implementation("sdpa")


def test_sampling_with_a_seed_repeats_and_differs_from_greedy(gpt2_tokenizer):
    model = tiny_gpt2()
    a = capture_generation(model, gpt2_tokenizer, PROMPT, 8, sample=True, temperature=5.0, seed=3)
    b = capture_generation(model, gpt2_tokenizer, PROMPT, 8, sample=True, temperature=5.0, seed=3)
    greedy = capture_generation(model, gpt2_tokenizer, PROMPT, 8)
    assert a.generation.new_ids == b.generation.new_ids
    assert a.generation.new_ids != greedy.generation.new_ids
    assert a.generation.sample and a.generation.seed == 3


def test_generation_goes_on_the_wire(gpt2_tokenizer):
    trace = capture_generation(tiny_gpt2(), gpt2_tokenizer, PROMPT, 3)
    enc = wire.encode_internals(trace)["generation"]
    assert tuple(enc) == wire.GENERATION_KEYS
    assert enc == {"prompt": trace.generation.prompt_length, "steps": 3, "sample": False}


def test_api_generate(gpt2_tokenizer):
    w = tx_magic.explain(tiny_gpt2(), gpt2_tokenizer, PROMPT, generate=4)
    assert w.trace.generation.steps == 4
    assert w._internals["generation"]["steps"] == 4


def test_encoder_models_and_bad_settings_get_clear_errors(minilm, gpt2_tokenizer):
    with pytest.raises(GenerationError, match=r"needs a causal LM|not a causal language model"):
        capture_generation(minilm.model, minilm.tokenizer, PROMPT, 3)
    with pytest.raises(GenerationError, match=r"takes 1\.\.512 tokens"):
        capture_generation(tiny_gpt2(), gpt2_tokenizer, PROMPT, 0)
    with pytest.raises(GenerationError, match="temperature must be above 0"):
        capture_generation(tiny_gpt2(), gpt2_tokenizer, PROMPT, 2, sample=True, temperature=0)
    with pytest.raises(tx_magic.EmptyTextError):
        capture_generation(tiny_gpt2(), gpt2_tokenizer, "  ", 2)


def test_magic_parses_generate(shell, gpt2_tokenizer):
    shell.user_ns.update(gen_model=tiny_gpt2(), gen_tok=gpt2_tokenizer)
    w = shell.run_line_magic("explain", "-m gen_model -t gen_tok --generate 3 The cat's mat")
    assert w.trace.generation.steps == 3
    prompt = gpt2_tokenizer("The cat's mat").input_ids
    assert list(w.trace.sequences["input"].ids[:len(prompt)]) == prompt
    w = shell.run_line_magic("explain", "-m gen_model -t gen_tok --generate 4 --sample --seed 1 --temperature 2 "
                                        "--top-k 5 --top-p 0.9 Hi")
    g = w.trace.generation
    assert g.sample and (g.seed, g.temperature, g.top_k, g.top_p) == (1, 2, 5, 0.9)


def test_magic_errors_are_one_line(shell):
    with pytest.raises(UsageError, match="go with --generate"):
        shell.run_line_magic("explain", "--sample Hello")
    with pytest.raises(UsageError, match="causal"):
        shell.run_line_magic("explain", "--generate 3 Hello")
