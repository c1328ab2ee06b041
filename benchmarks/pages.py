"""Make each tool's page from the same attention: tx_magic's widget, bertviz's head view,
CircuitsVis's attention heads. Runs in a worker subprocess so its peak memory is its own.

    python benchmarks/pages.py TOOL N OUTDIR   ->  prints one JSON line of Python-side numbers
"""

from __future__ import annotations

import json
import os
import pathlib
import threading
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

LAYERS, HEADS = 12, 12  # GPT-2 small's shape


def gpt2_small_attention(n: int):
    """One eager forward pass of a GPT-2-small-shaped model (random weights) on n tokens."""
    import torch
    import transformers as tf

    tf.logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = tf.GPT2Config(n_layer=LAYERS, n_head=HEADS, n_embd=768, n_positions=max(1024, n), vocab_size=50257)
    model = tf.GPT2LMHeadModel(cfg).eval()
    model.set_attn_implementation("eager")
    ids = torch.randint(0, 50257, (1, n))
    with torch.inference_mode():
        out = model(input_ids=ids, output_attentions=True)
    return out.attentions, [f"tok{i}" for i in range(n)]




class PeakRss:
    """Peak resident memory above what the process held on entry, sampled every 5 ms."""

    def __enter__(self) -> "PeakRss":
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.mb = (self.peak - self.base) / 1024 ** 2

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())


def make_tx_magic(attentions, tokens, outdir: pathlib.Path) -> dict:
    import numpy as np

    import tx_magic
    from tx_magic import wire

    t0 = time.perf_counter()
    att = np.stack([a[0].numpy() for a in attentions])
    seq = tx_magic.Tokens(text=tuple(tokens))
    trace = tx_magic.Trace("gpt2-small-shape", {"input": seq}, {"self": att},
                           masks={"self": np.tril(np.ones((len(tokens),) * 2, dtype=bool))})
    widget = tx_magic.show(trace)
    state = widget.get_state()
    python_s = time.perf_counter() - t0
    # What the widget sends at display: its state, with the binary blocks as buffers.
    eager = [{k: v for k, v in b.items() if k != "data"} for b in state["_layers"]]
    (outdir / "state.json").write_text(json.dumps({"_meta": state["_meta"], "_layers": eager,
                                                   **{k: state[k] for k in ("kind", "layer", "heads", "head", "token")}}))
    for b in state["_layers"]:
        (outdir / f"layer-{b['kind']}-{b['layer']}.bin").write_bytes(bytes(b["data"]))
    for layer in range(att.shape[0]):  # what the kernel would serve on request
        block = wire.encode_layer(trace, "self", layer)
        (outdir / f"lazy-self-{layer}.bin").write_bytes(block["data"])
    sent = len(json.dumps(state["_meta"]).encode()) + sum(len(b["data"]) for b in state["_layers"])
    return {"python_s": python_s, "bytes": sent}


def make_bertviz(attentions, tokens, outdir: pathlib.Path) -> dict:
    from bertviz import head_view

    t0 = time.perf_counter()
    html = head_view(attentions, tokens, html_action="return").data
    python_s = time.perf_counter() - t0
    (outdir / "page.html").write_text(html)
    return {"python_s": python_s, "bytes": len(html.encode())}


def make_circuitsvis(attentions, tokens, outdir: pathlib.Path) -> dict:
    from circuitsvis.attention import attention_heads

    t0 = time.perf_counter()
    # What a notebook displays offline: _repr_html_ finds no internet and inlines its bundle.
    html = attention_heads(attention=attentions[0][0], tokens=tokens)._repr_html_()  # one layer
    python_s = time.perf_counter() - t0
    (outdir / "page.html").write_text(html)
    return {"python_s": python_s, "bytes": len(html.encode())}


MAKERS = {"tx_magic": make_tx_magic, "bertviz": make_bertviz, "circuitsvis": make_circuitsvis}


def main() -> None:
    tool, n, outdir = sys.argv[1], int(sys.argv[2]), pathlib.Path(sys.argv[3])
    outdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    attentions, tokens = gpt2_small_attention(n)
    forward_s = time.perf_counter() - t0
    with PeakRss() as peak:  # sampled, so the tool runs at full speed (tracemalloc slowed bertviz 5x)
        result = MAKERS[tool](attentions, tokens, outdir)
    result.update(forward_s=forward_s, peak_python_mb=peak.mb)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
