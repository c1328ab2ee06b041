"""What value weighting, the Q/K view and the information flow cost, on real models.

    python benchmarks/valueflow.py                      MiniLM and SmolLM2-135M at 16 128 512 tokens
    python benchmarks/valueflow.py --models smollm2 --n 64 256

Each (model, length) runs in a fresh subprocess. Columns (seconds unless marked):

- capture: ``tx_magic.capture`` (the eager pass with attention weights);
- norms: the first ``trace.value_norms(per_key=True)``: one more, instrumented, pass of the model;
  norms_again: the same call once cached; ratio: norms / capture;
- value_reply: the widget's REQUEST_VALUE_NORMS answer (norms, row totals, weighted thumbnails), cached pass;
- qk_reply: a REQUEST_QUERIES_KEYS answer (one query, every key, one layer);
- flow_pass: the first ``trace.flow(token=-1)`` (an instrumented pass that also keeps the residual stream,
  then the routes into the last token); flow_token: the routes into another token, pass cached;
  flow_all: every node's kept edges (token=None; only up to 128 tokens);
- kept_MB: what the flow recording keeps (queries, keys, values, residual stream, projections).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TEXT = ("The committee postponed its decision until more evidence was available, because the first report "
        "left too many questions open and nobody wanted to repeat the mistakes of the previous year. ") * 40


def load(name: str):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__)))
    from internals import smollm2

    import tx_magic

    if name == "smollm2":
        return smollm2()
    loaded = tx_magic.load_model()
    return loaded.model, loaded.tokenizer


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def measure(name: str, n: int) -> dict:
    import numpy as np

    import tx_magic
    from tx_magic import wire

    model, tokenizer = load(name)
    tx_magic.capture(model, tokenizer, "warm up", max_tokens=8)
    trace, capture_s = timed(lambda: tx_magic.capture(model, tokenizer, TEXT, max_tokens=n))
    tokens = trace.shape()[2]
    _, norms_s = timed(lambda: trace.value_norms(per_key=True))
    _, again_s = timed(lambda: trace.value_norms(per_key=True))
    _, value_s = timed(lambda: wire.encode_value_norms(trace, "self"))
    _, qk_s = timed(lambda: wire.encode_queries_keys(trace, "self", trace.shape()[0] // 2, tokens - 1))
    _, flow_s = timed(lambda: trace.flow(token=-1))
    _, token_s = timed(lambda: trace.flow(token=tokens // 2))
    flow_all = timed(lambda: trace.flow())[1] if tokens <= 128 else None
    rec = trace.recording(flow=True)
    kept = sum(a.nbytes for layer in rec.layers["self"] for a in (
        layer.queries, layer.keys, layer.values, layer.projection if layer.projection is not None else np.zeros(0),
        *((layer.residual.inputs, layer.residual.whole, layer.residual.mid, layer.residual.post)
          if layer.residual is not None else ())))
    return {"model": name, "tokens": tokens, "capture": capture_s, "norms": norms_s, "norms_again": again_s,
            "ratio": norms_s / capture_s, "value_reply": value_s, "qk_reply": qk_s, "flow_pass": flow_s,
            "flow_token": token_s, "flow_all": flow_all, "kept_MB": kept / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["minilm", "smollm2"])
    parser.add_argument("--n", nargs="+", type=int, default=[16, 128, 512])
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]))))
        return
    rows = []
    for name in args.models:
        for n in args.n:
            out = subprocess.run([sys.executable, __file__, "--one", name, str(n)], capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{name} n={n} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    columns = ["model", "tokens", "capture", "norms", "norms_again", "ratio", "value_reply", "qk_reply", "flow_pass",
               "flow_token", "flow_all", "kept_MB"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for r in rows:
        cells = []
        for c in columns:
            v = r[c]
            cells.append("-" if v is None else f"{v:.2f}x" if c == "ratio" else f"{v:.3f}" if isinstance(v, float)
                         else str(v))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
