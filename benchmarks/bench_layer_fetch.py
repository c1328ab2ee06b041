"""A layer fetched from the kernel: Python encode, bytes, JS decode and the switch end to end, before and after.

    .venv/bin/python benchmarks/bench_layer_fetch.py                      # n = 512 1024 2048, before = main
    .venv/bin/python benchmarks/bench_layer_fetch.py --n 1024 --before HEAD~3

Attention: 12 layers x 12 heads (GPT-2 small's shape), causal, random weights: the softmax of random logits
(one layer's weights, every layer a view of them, so 2048 tokens fit in memory). Each tree ("before": the git
ref `--before` exported and its renderer built with this checkout's esbuild; "after": this working tree) runs in
its own processes: Python encodes layer 1 as the renderer asks for it (REQUEST_LAYER, uint8; best of 5), node
decodes those bytes with that tree's js/src/wire-decode.ts (best of 5), and the kernel stand-in of
bench_attention.py (pages.py --serve) serves its widget to headless Chromium, where the layer select switches
(until the matrix has drawn the new layer at full resolution, not a pooled overview first)
to 5 layers that are not in the browser yet (fetched: median and least, the median split into the wait for the
reply's bytes and what follows: decode, views, drawing; "first draw": the layer drawn at all, an overview where
the renderer asks for one first) and back to those (cached: median of 5). Both trees'
pages are open in one browser and take turns, switch by switch, so the load of a shared machine falls on both.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
LAYERS, HEADS = 12, 12
FETCHED = (2, 4, 6, 8, 10)  # layers switched to (not eager at these lengths); then back to fetched ones
CACHED = (4, 8, 2, 6, 10)

#: Records when each POST /msg (a request to the kernel stand-in) started and when its reply's bytes were in.
INSTRUMENT = """
window.__msgs = [];
const realFetch = window.fetch.bind(window);
window.fetch = async (url, init) => {
  const r = await realFetch(url, init);
  if (!String(url).endsWith('msg')) return r;
  const entry = { start: performance.now(), end: null };
  window.__msgs.push(entry);
  const body = await r.arrayBuffer();
  entry.end = performance.now();
  return new Response(body, { status: r.status, headers: r.headers });
};
"""

SWITCH = """async (target) => {
  const select = document.querySelector('select.txm-layer');
  const matrix = document.querySelector('[data-view="matrix"]');
  const want = String(target);
  window.__msgs = [];
  const t0 = performance.now();
  let first = null;  // the layer drawn at all (an overview first, where the renderer asks for one)
  const done = new Promise((resolve) => {
    const obs = new MutationObserver(() => {
      if (matrix.getAttribute('data-drawn-layer') !== want) return;
      first ??= performance.now() - t0;
      if (matrix.getAttribute('data-pool') === '1') { obs.disconnect(); resolve(performance.now()); }
    });
    obs.observe(matrix, { attributes: true });
  });
  const late = new Promise((resolve) => setTimeout(() => resolve(null), 30000));
  select.value = want;
  select.dispatchEvent(new Event('change', { bubbles: true }));
  const end = await Promise.race([done, late]);
  await new Promise((r) => setTimeout(r, 50));
  const msg = window.__msgs.find((m) => m.end !== null && m.start >= t0);
  return { total: end === null ? null : end - t0, first, wait: msg ? msg.end - t0 : null };
}"""

DECODE_JS = """
import { readFileSync } from "node:fs";
import { decodeBlock } from "./wire-decode.mjs";
const dir = process.argv[2];
const header = JSON.parse(readFileSync(dir + "/header.json", "utf8"));
const buffers = header.sizes.map((_, i) => { const b = readFileSync(dir + "/buffer-" + i + ".bin");
  return new DataView(b.buffer, b.byteOffset, b.byteLength); });
let best = Infinity, block = null;
for (let i = 0; i < 5; i++) {
  const t0 = performance.now();
  block = decodeBlock(header.content, buffers);
  best = Math.min(best, performance.now() - t0);
}
let sum = 0;
for (let i = 0; i < block.data.length; i += 4099) sum += block.data[i];
console.log(JSON.stringify({ decode_ms: best, values: block.data.length, checksum: sum }));
"""


def export_tree(ref: str, into: pathlib.Path) -> pathlib.Path:
    """`ref` of this repository as files in `into`, its renderer bundle built."""
    archive = into / "tree.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), ref], check=True)
    tree = into / "tree"
    tree.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    esbuild = ROOT / "node_modules" / ".bin" / "esbuild"
    subprocess.run([str(esbuild), str(tree / "js/src/index.ts"), "--bundle", "--format=esm", "--target=es2020",
                    "--minify", f"--outfile={tree / 'tx_magic/static/widget.js'}", "--log-level=warning"], check=True)
    (tree / "tx_magic/static/report.js").write_text("")
    shutil.copy(ROOT / "tx_magic/static/widget.css", tree / "tx_magic/static/widget.css")
    return tree


def random_trace(n: int):
    """A causal 12 x 12 trace of one random layer's weights, shared by every layer (a view)."""
    import numpy as np

    import tx_magic

    rng = np.random.default_rng(0)
    mask = np.tri(n, dtype=bool)
    layer = np.empty((HEADS, n, n), np.float32)
    for h in range(HEADS):
        logits = np.where(mask, rng.normal(0, 2, (n, n)).astype(np.float32), -np.inf)
        w = np.exp(logits - logits.max(-1, keepdims=True))
        layer[h] = w / w.sum(-1, keepdims=True)
    att = np.broadcast_to(layer, (LAYERS, HEADS, n, n))
    seq = tx_magic.Tokens(text=tuple(f"tok{i}" for i in range(n)))
    return tx_magic.Trace("random-12x12", {"input": seq}, {"self": att}, masks={"self": mask})


def worker(tree: pathlib.Path, n: int, outdir: pathlib.Path) -> None:
    """In `tree`'s Python: encode timings and one reply's bytes (for node), then serve the widget until stdin
    closes. Prints one JSON line."""
    sys.path.insert(0, str(tree))
    import pages  # this checkout's kernel stand-in: glue around whichever widget it is given

    import tx_magic
    from tx_magic import wire

    assert pathlib.Path(tx_magic.__file__).is_relative_to(tree), tx_magic.__file__
    trace = random_trace(n)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        reply, buffers = wire.reply_to(trace, {"type": wire.REQUEST_LAYER, "id": "x",
                                               "payload": {"kind": "self", "layer": 1, "dtype": "uint8", "pool": 1}})
        best = min(best, time.perf_counter() - t0)
    assert reply["type"] == wire.REPLY, reply
    (outdir / "reply").mkdir()
    (outdir / "reply/header.json").write_text(json.dumps({"content": reply["content"],
                                                          "sizes": [len(b) for b in buffers]}))
    for i, b in enumerate(buffers):
        (outdir / f"reply/buffer-{i}.bin").write_bytes(bytes(b))
    widget = tx_magic.show(trace)
    sent = pages.write_state(widget, outdir)
    for name in ("widget.js", "widget.css"):
        shutil.copy(tree / "tx_magic/static" / name, outdir / name)
    shutil.copy(HERE / "widget_host.html", outdir / "index.html")
    eager = [f"{b['layer']}" + (f"/{b['pool']}" if b.get("pool", 1) > 1 else "")  # layer[/pool][/topk]
             + ("/topk" if b["dtype"] == "topk" else "") for b in widget._layers]
    server, url = pages.serve_kernel(widget, outdir)
    print(json.dumps({"encode_ms": best * 1000, "bytes": sum(len(b) for b in buffers), "sent": sent,
                      "eager_layers": eager, "url": url}), flush=True)
    sys.stdin.read()
    server.shutdown()


def node_decode(tree: pathlib.Path, outdir: pathlib.Path) -> dict:
    esbuild = ROOT / "node_modules" / ".bin" / "esbuild"
    subprocess.run([str(esbuild), str(tree / "js/src/wire-decode.ts"), "--bundle", "--format=esm", "--platform=node",
                    f"--outfile={outdir / 'wire-decode.mjs'}", "--log-level=warning"], check=True)
    (outdir / "decode.mjs").write_text(DECODE_JS)
    out = subprocess.run(["node", str(outdir / "decode.mjs"), str(outdir / "reply")], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def browser_switches(urls: list[str]) -> list[dict]:
    """Each page's fetched and cached switches, the pages taking turns (each brought to the front) so a busy
    moment of a shared machine falls on all of them alike."""
    from bench_attention import DRAWN, browser_context
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        context = browser_context(pw, profile)
        try:
            pages = []
            for url in urls:
                page = context.new_page()
                page.add_init_script(INSTRUMENT)
                page.goto(f"{url}/index.html", wait_until="commit")
                page.wait_for_function(DRAWN["tx_magic"], timeout=120_000, polling=100)
                pages.append(page)

            def turns(layers: tuple[int, ...]) -> list[list[dict]]:
                out: list[list[dict]] = [[] for _ in pages]
                for layer in layers:
                    for i, page in enumerate(pages):
                        page.bring_to_front()
                        page.wait_for_timeout(200)
                        out[i].append(page.evaluate(SWITCH, layer))
                return out

            fetched, cached = turns(FETCHED), turns(CACHED)
        finally:
            context.close()
    rows = []
    for got, back in zip(fetched, cached, strict=True):
        totals = [s["total"] for s in got]
        rows.append({"switch_ms": median(totals), "switch_min_ms": min(totals) if None not in totals else None,
                     "first_ms": median([s["first"] for s in got]), "wait_ms": median([s["wait"] for s in got]),
                     "cached_ms": median([s["total"] for s in back])})
    return rows


def median(values: list[float | None]) -> float | None:
    return statistics.median(values) if values and None not in values else None


def measure(trees: list[pathlib.Path], n: int) -> list[dict]:
    """Every tree's numbers at n: its worker serving, node decoding its reply, then the browser switches."""
    with tempfile.TemporaryDirectory() as tmp:
        procs, rows = [], []
        try:
            for i, tree in enumerate(trees):
                outdir = pathlib.Path(tmp) / str(i)
                outdir.mkdir()
                procs.append(subprocess.Popen([sys.executable, __file__, "--worker", str(tree), str(n), str(outdir)],
                                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                              env={**os.environ, "PYTHONPATH": str(tree)}))
                row = json.loads(procs[-1].stdout.readline())
                row.update(node_decode(tree, outdir))
                rows.append(row)
            for row, switches in zip(rows, browser_switches([r.pop("url") for r in rows]), strict=True):
                row.update(switches)
        finally:
            for proc in procs:
                proc.stdin.close()
                proc.wait()
    for row in rows:
        row["after_wait_ms"] = row["switch_ms"] - row["wait_ms"] if row["switch_ms"] and row["wait_ms"] else None
    return rows


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(pathlib.Path(sys.argv[2]), int(sys.argv[3]), pathlib.Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--before", default="main", help="git ref of the 'before' tree (default: main)")
    args = parser.parse_args()
    print(f"{'tree':<16} {'n':>5} {'encode ms':>10} {'bytes':>11} {'js decode ms':>13} {'switch ms':>10} "
          f"{'least':>7} {'first draw':>11} {'reply in ms':>12} {'decode+draw ms':>15} {'cached ms':>10}  eager layers",
          flush=True)
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        trees = {f"before ({args.before})": export_tree(args.before, pathlib.Path(tmp)), "after": ROOT}
        for n in args.n:
            try:
                rows = measure(list(trees.values()), n)
            except Exception as err:  # noqa: BLE001 - one length failing (memory on a shared machine) is a result
                print(f"n={n}: failed: {str(err).splitlines()[-1][:160] if str(err) else type(err).__name__}")
                continue
            for name, r in zip(trees, rows, strict=True):
                print(f"{name:<16} {n:>5} {fmt(r['encode_ms']):>10} {r['bytes']:>11,} {fmt(r['decode_ms']):>13} "
                      f"{fmt(r['switch_ms']):>10} {fmt(r['switch_min_ms']):>7} {fmt(r['first_ms']):>11} "
                      f"{fmt(r['wait_ms']):>12} "
                      f"{fmt(r['after_wait_ms']):>15} {fmt(r['cached_ms']):>10}  {r['eager_layers']}", flush=True)
            ratios.append((n, *rows))
    for n, before, after in ratios:
        def ratio(key: str, before: dict = before, after: dict = after) -> str:
            return fmt(before[key] / after[key], 2) + "x" if before[key] and after[key] else "-"

        print(f"n={n}: before / after: encode {ratio('encode_ms')}, bytes {ratio('bytes')}, "
              f"js decode {ratio('decode_ms')}, switch {ratio('switch_ms')} (least {ratio('switch_min_ms')}), "
              f"cached {ratio('cached_ms')}")

if __name__ == "__main__":
    main()
