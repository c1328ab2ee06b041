"""Activation patching of every head of SmolLM2-135M (real weights, 30 layers x 9 heads) on a 15-token
IOI-style prompt: tx_magic's exact patching, its attribution (gradient) patching, and what a user writes
by hand (plain forward pre-hooks on each layer's o_proj, one run per head: the TransformerLens way).

    python benchmarks/bench_patching.py                  # one run, every number printed
    python benchmarks/bench_patching.py --chunks 128 256 512 1024   # exact patching at other chunk sizes

Printed, all from one run after a warm-up pass:

- forward_s, forward_backward_s: one plain forward (sdpa, last position's logits) and one forward and
  backward of the metric, the units the targets are measured in;
- exact_s: `tx_magic.patch(..., method="exact")`, all 270 heads (batched runs of about `chunk` tokens,
  layers below each chunk's first patched layer skipped), clean and corrupted runs included;
  target <= 30 s on this machine;
- hooks_s: 270 + 2 unbatched runs with a pre-hook on o_proj (the reference implementation of the tests);
- gradient_s: `method="gradient"`; target <= 3x forward_backward_s;
- max |exact - hooks|, and the Spearman rank correlation of exact and gradient effects.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from internals import smollm2  # benchmarks/internals.py, after the path it is found on

CLEAN = "When Mary and John went to the store together, John gave a drink to"
CORRUPT = "When Mary and John went to the store together, Mary gave a drink to"


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv: list[str]) -> None:
    import numpy as np
    import torch
    from reference_heads import head_inputs, head_size, replace_slice, run

    import tx_magic

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, nargs="*", default=[], help="also time exact patching at these chunks")
    args = parser.parse_args(argv)
    model, tok = smollm2()
    ids = {t: torch.tensor([tok(t)["input_ids"]]) for t in (CLEAN, CORRUPT)}
    n = ids[CLEAN].shape[1]
    a, w = (tok(x, add_special_tokens=False)["input_ids"][0] for x in (" Mary", " John"))
    layers, heads, d = model.config.num_hidden_layers, model.config.num_attention_heads, head_size(model)
    print(f"SmolLM2-135M, {layers} layers x {heads} heads, {n}-token prompt, {torch.get_num_threads()} threads")

    with torch.inference_mode():
        model(ids[CORRUPT], logits_to_keep=1)  # warm-up
        _, forward_s = timed(lambda: model(ids[CORRUPT], logits_to_keep=1))

    def forward_backward() -> None:
        out = model(ids[CORRUPT], logits_to_keep=1).logits[0, -1]
        (out[a] - out[w]).backward()
        model.zero_grad(set_to_none=True)

    _, forward_backward_s = timed(forward_backward)

    exact, exact_s = timed(lambda: tx_magic.patch(model, tok, CLEAN, CORRUPT, answer=" Mary", wrong=" John"))
    gradient, gradient_s = timed(lambda: tx_magic.patch(model, tok, CLEAN, CORRUPT, answer=" Mary", wrong=" John",
                                                        method="gradient"))

    def by_hand() -> np.ndarray:
        with torch.inference_mode():
            source = head_inputs(model, ids[CLEAN])
            out = np.zeros((layers, heads))
            for layer in range(layers):
                for h in range(heads):
                    def edit(lay, x, layer=layer, h=h):
                        return replace_slice(x, source[lay], [h], None, d) if lay == layer else x
                    logits = run(model, ids[CORRUPT], edit).logits[0, -1]
                    out[layer, h] = float(logits[a] - logits[w])
            return out

    hooks, hooks_s = timed(by_hand)
    chunk_rows = []
    for chunk in args.chunks:
        _, seconds = timed(lambda chunk=chunk: tx_magic.patch(model, tok, CLEAN, CORRUPT, answer=" Mary",
                                                               wrong=" John", chunk_tokens=chunk))
        chunk_rows.append((chunk, seconds))

    print()
    print("| what | seconds | ratio | target |")
    print("|---|---|---|---|")
    print(f"| one forward | {forward_s:.3f} | 1.0x forward | |")
    print(f"| one forward + backward | {forward_backward_s:.3f} | {forward_backward_s / forward_s:.1f}x forward | |")
    print(f"| exact, all {layers * heads} heads (tx_magic) | {exact_s:.2f} | {exact_s / forward_s:.0f}x forward | "
          f"<= 30 s: {'met' if exact_s <= 30 else 'NOT met'} |")
    print(f"| exact by hand: one hooked run per head | {hooks_s:.2f} | {hooks_s / forward_s:.0f}x forward, "
          f"{hooks_s / exact_s:.1f}x tx_magic | |")
    print(f"| gradient (attribution patching) | {gradient_s:.3f} | {gradient_s / forward_backward_s:.2f}x "
          f"forward + backward | <= 3x: {'met' if gradient_s <= 3 * forward_backward_s else 'NOT met'} |")
    for chunk, seconds in chunk_rows:
        print(f"| exact, chunk_tokens={chunk} | {seconds:.2f} | {seconds / forward_s:.0f}x forward | |")
    print()
    print(f"max |exact - by hand| = {np.abs(exact.raw - hooks).max():.2e}")
    print(f"metric {exact.metric}: clean {exact.metric_clean:.3f}, corrupted {exact.metric_corrupt:.3f}")
    print(f"rank correlation (Spearman) of exact and gradient effects: {exact.correlation(gradient):.3f}")
    print("top heads (exact effect / gradient effect):",
          ", ".join(f"L{lay}H{h} {e:+.2f}/{gradient.effects[lay, h]:+.2f}" for (lay, h), e in exact.top(6)))


if __name__ == "__main__":
    main(sys.argv[1:])
