"""Long inputs streamed (#16): a long-context Llama-shaped model, n tokens, memory and time per layer.

    python benchmarks/bench_long.py --n 8192 16384 32768 [--layers 16] [--bare-layers 2] [--windows 4] [--browser]

The model is built from a config, random weights: 16 layers (`--layers`) x 16 query heads sharing 4 key/value
heads, head dim 64, RoPE, 32768 positions; hidden 256 and MLP 512, so attention dominates. The
text is GPT-2-tokenized English repeated to n tokens. Per n, printed as it goes:

- the memory estimate and mode `tx_magic.capturing.memory.plan_capture` chooses;
- `tx_magic.capture` (the streamed pass): seconds of each layer as it finishes (the time between
  the recorder's per-layer callbacks: the model's own layer plus the reduction), the total, and the
  peak resident memory above the built, warmed-up model (RSS sampled every 5 ms in a thread);
- the widget: `tx_magic.show(trace).get_state()` time and the bytes it sends (JSON + binary parts);
  which blocks it sends eagerly (`tx_magic.wire.plan.eager_plan`);
- the bare forward pass with sdpa (no cache, last position's logits): the whole model, or with
  `--bare-layers k` only the first k layers, timed and scaled to all layers (said so in the line);
- exact blocks: `trace.block(...)` against softmax(q k^T / sqrt(d) + causal mask) computed in plain
  torch from q_proj/k_proj outputs caught by forward hooks in the bare pass and rotated by RoPE written
  from its definition, for `--windows` windows of 64 x 64 on each layer the bare pass ran;
- with `--browser`: the widget in headless Chromium, drawn, zoomed to exact cells and its tooltips
  checked against the trace (long_browser.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(pathlib.Path(__file__).parent))

from bench_capture import gpt2_tokenizer
from pages import LONG_TEXT, PeakRss, write_state

LAYERS, HEADS, KV_HEADS, HEAD_DIM, HIDDEN, MLP, POSITIONS, THETA = 16, 16, 4, 64, 256, 512, 32768, 500000.0
GB = 1024 ** 3


def say(*parts: object) -> None:
    print(*parts, flush=True)


def build_model(vocab: int, layers: int = LAYERS) -> Any:
    import torch
    import transformers as tf

    torch.manual_seed(0)
    config = tf.LlamaConfig(num_hidden_layers=layers, num_attention_heads=HEADS, num_key_value_heads=KV_HEADS,
                            head_dim=HEAD_DIM, hidden_size=HIDDEN, intermediate_size=MLP, vocab_size=vocab,
                            max_position_embeddings=POSITIONS, rope_theta=THETA, attn_implementation="sdpa")
    return tf.LlamaForCausalLM(config).eval()


class LayerClock:
    """Stands in for the capture's progress bar: prints each layer's seconds as it finishes, with the peak
    resident memory above the model so far (layer 0's time includes the embedding and the plan)."""

    def __init__(self, peak: PeakRss) -> None:
        self.peak = peak
        self.last = time.perf_counter()
        self.times: list[float] = []

    def update(self, _step: int = 1) -> None:
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.last = now
        above = (self.peak.peak - self.peak.base) / 1024 ** 2
        say(f"    layer {len(self.times) - 1:2d}: {self.times[-1]:7.2f} s, peak so far {above:.0f} MB above the model")

    def close(self) -> None:
        pass


@contextlib.contextmanager
def layer_clock(peak: PeakRss) -> Any:
    from tx_magic.capturing import hf

    clock = LayerClock(peak)
    original = hf._progress
    hf._progress = lambda *_: clock
    try:
        yield clock
    finally:
        hf._progress = original


def rope(x: Any, positions: Any) -> Any:
    """RoPE from its definition (rotate-half layout): pairs (i, i + d/2) turn by position * theta^(-2i/d),
    the angle in float32 as Llama computes it (at 32k positions float64 angles differ by ~1e-3 rad)."""
    import torch

    half = HEAD_DIM // 2
    freq = 1.0 / THETA ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float32) / HEAD_DIM)
    angle = positions[:, None].float() * freq[None, :]
    cos, sin = torch.cos(angle), torch.sin(angle)
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)


def bare_pass(model: Any, ids: list[int], layers: int) -> tuple[float, dict[int, tuple[Any, Any]]]:
    """Seconds of a bare sdpa pass through the first `layers` layers, and their q_proj/k_proj outputs."""
    import torch

    caught: dict[int, list[Any]] = {}

    def catch(layer: int, slot: int) -> Any:
        def hook(_module: Any, _args: Any, out: Any) -> None:
            caught.setdefault(layer, [None, None])[slot] = out[0].detach().clone()
        return hook

    handles = []
    for i, layer in enumerate(model.model.layers[:layers]):
        handles.append(layer.self_attn.q_proj.register_forward_hook(catch(i, 0)))
        handles.append(layer.self_attn.k_proj.register_forward_hook(catch(i, 1)))
    full = model.model.layers
    model.model.layers = full[:layers]
    try:
        with torch.inference_mode():
            start = time.perf_counter()
            model(input_ids=torch.tensor([ids]), logits_to_keep=1, use_cache=False)
            seconds = time.perf_counter() - start
    finally:
        model.model.layers = full
        for h in handles:
            h.remove()
    return seconds, {i: (q, k) for i, (q, k) in caught.items()}


def eager_window(q_proj: Any, k_proj: Any, q0: int, q1: int, k0: int, k1: int) -> Any:
    """Exact causal attention of queries q0:q1 over keys k0:k1, (H, q1-q0, k1-k0), from projections (n, H*d)."""
    import torch

    n = k_proj.shape[0]
    q = rope(q_proj[q0:q1].view(q1 - q0, HEADS, HEAD_DIM).transpose(0, 1), torch.arange(q0, q1))
    k = rope(k_proj.view(n, KV_HEADS, HEAD_DIM).transpose(0, 1)[:, :q1], torch.arange(q1))
    k = k.repeat_interleave(HEADS // KV_HEADS, dim=0)
    scores = q @ k.transpose(-1, -2) / HEAD_DIM ** 0.5            # (H, rows, keys 0..q1)
    future = torch.arange(q1)[None, :] > torch.arange(q0, q1)[:, None]
    scores = scores.masked_fill(future, float("-inf"))
    full = torch.softmax(scores, dim=-1)
    out = torch.zeros(HEADS, q1 - q0, k1 - k0)
    width = min(k1, q1) - k0
    if width > 0:
        out[:, :, :width] = full[:, :, k0:k0 + width]
    return out


def windows(n: int, count: int) -> list[tuple[int, int, int, int]]:
    w = 64
    picks = [(0, w, 0, w), (n - w, n, 0, w), (n // 2, n // 2 + w, n // 2 - w // 2, n // 2 + w // 2),
             (n - w, n, n - w, n), (n // 3, n // 3 + w, n // 5, n // 5 + w)]
    return picks[:count]


def run(n: int, model: Any, tokenizer: Any, bare_layers: int | None, count: int, browser: bool = False) -> None:
    import numpy as np
    import torch

    import tx_magic
    from tx_magic.capturing import memory
    from tx_magic.wire.plan import eager_plan, plan_nbytes

    ids = (tokenizer(LONG_TEXT)["input_ids"] * (n // 40 + 2))[:n]
    plan = memory.plan_capture(model, n, streamable=True, copies=1)  # as capture() plans for this model
    full = memory.full_bytes(memory.Shape.of(model), n, copies=1)
    say(f"n={n}: estimate {plan.estimate / GB:.2f} GB, mode {plan.mode} (a full float32 capture: {full / GB:.0f} GB)")
    with torch.inference_mode():
        model(input_ids=torch.tensor([ids[:16]]), use_cache=False)   # warm-up
    with PeakRss() as peak, layer_clock(peak) as clock:
        start = time.perf_counter()
        trace = tx_magic.capture(model, tokenizer, "", ids=ids)
        capture_s = time.perf_counter() - start
    kept = getattr(trace.store("self"), "nbytes", None)
    per = (f"{np.mean(clock.times):.2f} s per layer (min {min(clock.times):.2f}, max {max(clock.times):.2f})"
           if clock.times else "no per-layer times (a full capture)")
    say(f"  capture: {capture_s:.1f} s total, {per}, streamed={trace.is_streamed()}, "
        f"peak {peak.mb:.0f} MB above the model" + (f", kept {kept / 1e6:.0f} MB" if kept else ""))
    start = time.perf_counter()
    widget = tx_magic.show(trace)
    widget.get_state()
    widget_s = time.perf_counter() - start
    items = eager_plan(trace)
    with tempfile.TemporaryDirectory() as out:
        sent = write_state(widget, pathlib.Path(out))  # what the page receives, also --browser's page
        say(f"  widget: {widget_s:.2f} s, sends {sent / 1e6:.2f} MB; eager blocks "
            + ", ".join(f"L{e.layer} {e.dtype} pool {e.pool}" + (f" k={e.k}" if e.k else "") for e in items)
            + f" ({plan_nbytes(trace, items) / 1e6:.2f} MB)")
        if browser:
            from long_browser import measure

            measure(widget, trace, n, pathlib.Path(out))
    layers = len(model.model.layers)
    ran = layers if bare_layers is None else min(bare_layers, layers)
    bare_s, caught = bare_pass(model, ids, ran)
    per_layer = bare_s / ran
    scaled = "" if ran == layers else f" (measured on the first {ran} layers: {bare_s:.1f} s, scaled to {layers})"
    say(f"  bare sdpa forward: {per_layer * layers:.1f} s, {per_layer:.2f} s per layer{scaled}; "
        f"capture / bare {capture_s / (per_layer * layers):.2f}x")
    worst = 0.0
    for layer, (qp, kp) in sorted(caught.items()):
        for q0, q1, k0, k1 in windows(n, count):
            got = trace.block("self", layer, q0, q1, k0, k1)
            want = eager_window(qp, kp, q0, q1, k0, k1).numpy()
            worst = max(worst, float(np.abs(got - want).max()))
    say(f"  exact blocks: {len(caught) * count} windows of 64x64 on layers 0..{len(caught) - 1}, "
        f"max |block - eager from hooks| = {worst:.2e} ({'ok' if worst <= 1e-6 else 'OVER 1e-6'})")
    del trace, widget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[8192, 16384, 32768])
    parser.add_argument("--bare-layers", type=int, default=None,
                        help="time the bare pass on the first k layers only and scale (default: all)")
    parser.add_argument("--layers", type=int, default=LAYERS, help=f"model layers (default {LAYERS})")
    parser.add_argument("--browser", action="store_true",
                        help="also draw the widget in headless Chromium and zoom to exact cells")
    parser.add_argument("--windows", type=int, default=4, help="exact windows checked per layer (at most 5)")
    args = parser.parse_args()
    import torch

    say(f"torch {torch.__version__}, {torch.get_num_threads()} threads; model: {args.layers} layers x {HEADS} heads "
        f"({KV_HEADS} KV heads), head dim {HEAD_DIM}, hidden {HIDDEN}, MLP {MLP}, RoPE, {POSITIONS} positions")
    with tempfile.TemporaryDirectory() as folder:
        tokenizer = gpt2_tokenizer(pathlib.Path(folder))
    model = build_model(len(tokenizer), args.layers)
    for n in args.n:
        run(n, model, tokenizer, args.bare_layers, args.windows, args.browser)


if __name__ == "__main__":
    main()
