"""The widget in a real JupyterLab over a direct link and a slow one: bytes per widget, first view, layer switch (#16).

    python benchmarks/bench_link.py                      # n = 1024, both links
    python benchmarks/bench_link.py --links slow --mbit 10 --rtt-ms 100

One JupyterLab server (the e2e harness, tests/e2e/jupyterlab.py) and one headless Chromium. For each
link a fresh notebook builds a GPT-2-small-shaped model (12 layers x 12 heads, d 768, random
weights, no hub) and runs ``tx_magic.explain(model, tokenizer, ids=ids)`` on `--n` random token ids,
made as benchmarks/bench_capture.py makes them. The cell stamps ``time.time()`` when explain() returns.
The second link's notebook runs in the first one's kernel (its model built, its widget closed).

* direct: Chromium talks to the server on loopback;
* slow: Chromium opens the same notebook through benchmarks/slowlink.py (`--mbit` each way, `--rtt-ms`
  round trip), so the page, its HTTP requests and the kernel's websocket all cross the slow link.

Measured in the page (an init script; nothing in tx_magic is changed for it):

* bytes per widget: the payload of every websocket message from the kernel whose comm (or widget
  view) is this widget's, parsed from Jupyter's websocket protocol; before the first view, and in
  total once the widget's traffic settled (at least `--settle` s after the first view, then
  `QUIET_S` s without a byte); speculative = total - before the first view (nothing was asked);
* first view: the animation frame after the explorer marks itself drawn (``.txm-root[data-ready="1"]``),
  in seconds after explain() returned (the page's Date.now() against the kernel's time.time(), one clock);
* layer switch, by the layer control (``select.txm-layer``), until the animation frame after the
  matrix reports the new layer drawn (``data-drawn-layer``): *fetched* to a layer the page has not
  seen (bytes came for it; *full* when it is drawn at full resolution, ``data-pool="1"``), *cached*
  back and forth between two layers it holds (the median of five; no bytes came).

Also printed: when each of the widget's messages arrived whole (after explain() returned, and after the
fetched switch), what types they were, and how long the page's main thread ran long tasks (> 50 ms)
between the last arrival and the draw: transport against page work.

Playwright's driver copies websocket frames too (a large transfer is ~1.5x slower under it on the
direct link); the slow link's proxy also counts every byte it carried down while the widget loaded.
Prints one table and the #16 targets with the ratio measured / target.
"""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import statistics
import sys
import time
from dataclasses import dataclass, field

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))  # the e2e harness
sys.path.insert(0, str(HERE))

import slowlink  # noqa: E402
from e2e.jupyterlab import (  # noqa: E402
    E2ETimeout,
    JupyterLabServer,
    browser,
    execute_in_kernel,
    fail_with_screenshot,
    open_notebook,
    run_all_and_wait,
    wait_for_js,
)

MB = 1e6
#: Seconds without a byte for the widget that count as settled.
QUIET_S = 3.0
#: #16's targets.
TARGETS = {
    "direct": {"first_view_s": 1.0, "switch_cached_ms": 100.0, "switch_fetched_ms": 300.0},
    "slow": {"first_view_s": 3.0, "speculative_MB": 2.0},
}
VIEW_MIME = "application/vnd.jupyter.widget-view+json"

# Runs in the page before JupyterLab: counts the kernel websocket's messages (time, bytes, comm id)
# and records when the explorer is drawn and each matrix draw (layer, pool), each with the next frame.
INSTRUMENT = """(() => {
  const frames = window.__txmFrames = [];
  const draws = window.__txmDraws = [];
  window.__txmReady = null;
  const busy = window.__txmLongTasks = [];
  try {
    new PerformanceObserver((list) => { for (const e of list.getEntries()) busy.push([e.startTime, e.duration]); })
      .observe({type: 'longtask', buffered: true});
  } catch (err) { /* no long-task timing in this browser */ }
  const dec = new TextDecoder();
  const VIEW = %r;
  const ids = (msg) => {
    const c = msg.content || {};
    const view = c.data && c.data[VIEW];
    return {type: msg.header && msg.header.msg_type, comm: c.comm_id || (view && view.model_id) || null};
  };
  const parse = (data, protocol) => {
    try {
      if (typeof data === 'string') return ids(JSON.parse(data));
      const dv = new DataView(data);
      if (protocol === 'v1.kernel.websocket.jupyter.org') {
        const off = (i) => Number(dv.getBigUint64(8 * (i + 1), true));
        const part = (i) => JSON.parse(dec.decode(new Uint8Array(data, off(i), off(i + 1) - off(i))));
        return ids({header: part(1), content: part(4)});
      }
      const start = dv.getUint32(4), end = dv.getUint32(0) > 1 ? dv.getUint32(8) : data.byteLength;
      return ids(JSON.parse(dec.decode(new Uint8Array(data, start, end - start))));
    } catch (err) {
      return {type: 'unparsed: ' + err, comm: null};
    }
  };
  const Native = window.WebSocket;
  class Counted extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      const kernel = /\\/api\\/kernels\\//.test(String(url));
      this.addEventListener('message', (e) => {
        const t = Date.now(), p = performance.now();
        const n = typeof e.data === 'string' ? new Blob([e.data]).size : (e.data.byteLength ?? e.data.size);
        const info = kernel && (typeof e.data === 'string' || e.data instanceof ArrayBuffer)
          ? parse(e.data, this.protocol) : {type: kernel ? 'blob' : 'other socket', comm: null};
        frames.push({t, p, n, kernel, type: info.type, comm: info.comm});
      });
    }
  }
  window.WebSocket = Counted;
  const frame = (rec) => requestAnimationFrame(() => { rec.frameT = Date.now(); rec.frameP = performance.now(); });
  new MutationObserver((records) => {
    const t = Date.now(), p = performance.now();
    for (const r of records) {
      const el = r.target;
      if (r.attributeName === 'data-ready' && el.getAttribute('data-ready') === '1' && window.__txmReady === null) {
        window.__txmReady = {t, p, frameT: null, frameP: null};
        frame(window.__txmReady);
      } else if (r.attributeName === 'data-drawn-layer' && el.getAttribute('data-view') === 'matrix') {
        const rec = {t, p, layer: Number(el.getAttribute('data-drawn-layer')),
                     pool: Number(el.getAttribute('data-pool') || '0'), frameT: null, frameP: null};
        draws.push(rec);
        frame(rec);
      }
    }
  }).observe(document, {subtree: true, attributes: true, attributeFilter: ['data-ready', 'data-drawn-layer']});
})();""" % VIEW_MIME  # noqa: UP031 - the JS is full of braces

SETUP = """\
import pathlib, sys, tempfile, time
sys.path.insert(0, {bench!r})
import torch
import transformers as tf
import tx_magic
from bench_capture import gpt2_tokenizer

if "model" not in globals():  # the kernel the direct link used has them already
    torch.manual_seed(0)
    model = tf.GPT2LMHeadModel(tf.GPT2Config(n_layer=12, n_head=12, n_embd=768, n_positions={n})).eval()
    tok = gpt2_tokenizer(pathlib.Path(tempfile.mkdtemp()))
ids = torch.randint(0, 50257, ({n},), generator=torch.Generator().manual_seed({n})).tolist()
print(tx_magic.__file__)
"""
EXPLAIN = """\
_t_start = time.time()
w = tx_magic.explain(model, tok, ids=ids)
_t_explain = time.time()
print("TXM", w.model_id, repr(_t_start), repr(_t_explain))
w
"""

# JS: every stream output of the notebook's cells, joined.
OUTPUTS = """() => {
  let out = '';
  for (const c of window.jupyterapp.shell.currentWidget.content.widgets) {
    if (c.model.type !== 'code') continue;
    for (let i = 0; i < c.model.outputs.length; i++) {
      const o = c.model.outputs.get(i).toJSON();
      if (o.output_type === 'stream') out += o.text;
    }
  }
  return out;
}"""


@dataclass
class Result:
    """One link's numbers (None where not measured) and why it stopped, if it failed."""

    link: str
    explain_s: float | None = None
    first_view_s: float | None = None
    bytes_before: int | None = None
    bytes_total: int | None = None
    settled: bool = False
    link_down: int | None = None
    switch_fetched_ms: float | None = None
    switch_full_ms: float | None = None
    fetched_bytes: int | None = None
    switch_cached_ms: float | None = None
    cached_bytes: int | None = None
    error: str | None = None
    kernel: str | None = None
    #: The kernel this link was asked to reuse (the previous link's), if any.
    reused: str | None = None
    notes: list[str] = field(default_factory=list)
    #: "before"/"after" the first view -> message type -> [messages, bytes].
    breakdown: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    #: The widget's messages before its first view: (type, bytes, s after explain() returned when it had arrived).
    timeline: list[tuple[str, int, float]] = field(default_factory=list)
    #: The same for the fetched layer switch, in ms after the switch.
    fetch_timeline: list[tuple[str, int, float]] = field(default_factory=list)
    #: (ms from the last message to the first view, ms of main-thread long tasks in them); the same from
    #: the fetched layer's arrival to its draw.
    busy_first: tuple[float, float] | None = None
    busy_fetch: tuple[float, float] | None = None
    package: str = ""

    @property
    def speculative(self) -> int | None:
        if self.bytes_total is None or self.bytes_before is None:
            return None
        return self.bytes_total - self.bytes_before


@dataclass
class Via:
    """The server as seen through another address (the slow link): what open_notebook needs."""

    server: JupyterLabServer
    url: str
    TREE: str = JupyterLabServer.TREE
    OPENED: str = JupyterLabServer.OPENED

    @property
    def root_dir(self) -> pathlib.Path:
        return self.server.root_dir


def widget_frames(page, comm: str, since: float = 0.0) -> list[dict]:
    """The kernel's websocket messages for widget `comm` received at or after Date.now() `since` (ms)."""
    return page.evaluate("([comm, since]) => window.__txmFrames.filter(f => f.comm === comm && f.t >= since)",
                         [comm, since])


def widget_bytes(page, comm: str, since: float = 0.0) -> int:
    return sum(f["n"] for f in widget_frames(page, comm, since))


def busy_ms(page, p_from: float, p_to: float) -> float:
    """Milliseconds of main-thread long tasks (> 50 ms each) inside [p_from, p_to] (performance.now())."""
    return page.evaluate("""([a, b]) => window.__txmLongTasks.reduce(
      (sum, [start, d]) => sum + Math.max(0, Math.min(b, start + d) - Math.max(a, start)), 0)""", [p_from, p_to])


def settle(page, comm: str, least_s: float, cap_s: float) -> bool:
    """Wait `least_s`, then until the widget had no message for `QUIET_S` s; False if `cap_s` ran out first."""
    start = time.monotonic()
    time.sleep(least_s)
    while time.monotonic() - start < cap_s:
        last = page.evaluate("(comm) => Math.max(0, ...window.__txmFrames.filter(f => f.comm === comm).map(f => f.t))",
                             comm)
        now = page.evaluate("() => Date.now()")
        if now - last >= QUIET_S * 1000:
            return True
        time.sleep(0.25)
    return False


def switch(page, layer: int, comm: str, *, full: bool, timeout: float) -> tuple[float, float, float | None]:
    """Choose `layer` in the layer control; returns when (the page's performance.now(), ms), ms until the
    frame after the matrix drew it and, with `full`, ms until it was drawn at full resolution (None when
    the widget's traffic went quiet for `QUIET_S` s, or `timeout` ran out, without that)."""
    p0 = page.evaluate("""(layer) => {
      const select = document.querySelector('select.txm-layer');
      if (!select) throw new Error('no select.txm-layer in the page');
      const p0 = performance.now();
      select.value = String(layer);
      select.dispatchEvent(new Event('change', {bubbles: true}));
      return p0;
    }""", layer)
    drawn = """([layer, p0]) => {
      const d = window.__txmDraws.find(d => d.p >= p0 && d.layer === layer && d.frameP !== null);
      return d ? d.frameP : null;
    }"""
    describe = "() => window.__txmDraws.slice(-5)"
    first = wait_for_js(page, drawn, f"the matrix to draw layer {layer}", arg=[layer, p0], timeout=timeout,
                        describe=describe)
    if not full:
        return p0, first - p0, None
    finest = """([layer, p0, comm, quiet, first]) => {
      const d = window.__txmDraws.find(d => d.p >= p0 && d.layer === layer && d.pool === 1 && d.frameP !== null);
      if (d) return {at: d.frameP};
      const last = Math.max(first, ...window.__txmFrames.filter(f => f.comm === comm).map(f => f.p));
      return performance.now() - last >= quiet ? {at: null} : null;
    }"""
    try:
        whole = wait_for_js(page, finest, f"the matrix to draw layer {layer} at full resolution",
                            arg=[layer, p0, comm, QUIET_S * 1000, first], timeout=timeout, describe=describe)["at"]
    except E2ETimeout:
        whole = None
    return p0, first - p0, None if whole is None else whole - p0


def measure(context, server: JupyterLabServer, link: str, args: argparse.Namespace, proxy=None,
            kernel: str | None = None) -> Result:
    """One link's numbers. The notebook runs in `kernel` (the previous link's, with its model built)
    when given; the kernel is left running (its widget closed) unless the run failed."""
    result = Result(link, reused=kernel)
    page = context.new_page()
    page.add_init_script(INSTRUMENT)
    page_errors: list[str] = []
    page.on("pageerror", lambda err: page_errors.append(str(err)))
    slow = proxy is not None
    target = Via(server, proxy.url) if slow else server
    scale = 3.0 if slow else 1.0  # timeouts
    try:
        server.reset_workspace()
        name = f"bench-{link}.ipynb"
        path = server.write_notebook(name, [SETUP.format(bench=str(HERE), n=args.n), EXPLAIN])
        if kernel is not None:  # JupyterLab opens the notebook on this session, in that kernel
            server.api("POST", "api/sessions",
                       {"path": name, "name": name, "type": "notebook", "kernel": {"id": kernel}})
        open_notebook(page, target, path, timeout=60 * scale)
        result.kernel = page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.id")
        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        down0 = proxy.counters.down if slow else 0
        run_all_and_wait(page, timeout=240)
        stamp = next((line.split() for line in page.evaluate(OUTPUTS).splitlines() if line.startswith("TXM ")), None)
        if stamp is None:
            raise AssertionError(f"the explain cell printed no TXM line: {page.evaluate(OUTPUTS)!r}")
        _, comm, t_start, t_explain = stamp
        result.package = next((line for line in page.evaluate(OUTPUTS).splitlines() if line.endswith(".py")), "?")
        result.explain_s = float(t_explain) - float(t_start)
        ready = wait_for_js(page, "() => window.__txmReady && window.__txmReady.frameT !== null && window.__txmReady",
                            '.txm-root[data-ready="1"] (the first view drawn)', timeout=60 * scale,
                            describe="() => document.querySelector('.txm-root')?.outerHTML.slice(0, 300) ?? 'none'")
        result.first_view_s = ready["frameT"] / 1000 - float(t_explain)
        result.bytes_before = sum(f["n"] for f in widget_frames(page, comm) if f["t"] <= ready["frameT"])
        result.settled = settle(page, comm, args.settle, cap_s=args.settle + 30 * scale)
        if not result.settled:
            waited = args.settle + 30 * scale
            result.notes.append(f"the widget's traffic had not settled {waited:.0f} s after the first view")
        frames = widget_frames(page, comm)
        result.bytes_total = sum(f["n"] for f in frames)
        for f in frames:
            phase = result.breakdown.setdefault("before" if f["t"] <= ready["frameT"] else "after", {})
            count = phase.setdefault(str(f["type"]), [0, 0])
            count[0] += 1
            count[1] += f["n"]
        result.timeline = [(str(f["type"]), f["n"], f["t"] / 1000 - float(t_explain))
                           for f in frames if f["t"] <= ready["frameT"]]
        last = max((f["p"] for f in frames if f["t"] <= ready["frameT"]), default=ready["frameP"])
        result.busy_first = (ready["frameP"] - last, busy_ms(page, last, ready["frameP"]))
        if slow:
            result.link_down = proxy.counters.down - down0
        layers = page.evaluate("() => document.querySelector('select.txm-layer')?.options.length ?? 0")
        if layers < 2:
            raise AssertionError(f"the layer control offers {layers} layers")
        shown = int(page.evaluate("() => document.querySelector('select.txm-layer').value"))
        far = (shown + layers // 2) % layers
        since = page.evaluate("() => Date.now()")
        p0, result.switch_fetched_ms, result.switch_full_ms = switch(page, far, comm, full=True, timeout=20 * scale)
        settle(page, comm, 0.5, cap_s=20 * scale)
        fetched = widget_frames(page, comm, since)
        result.fetched_bytes = sum(f["n"] for f in fetched)
        result.fetch_timeline = [(str(f["type"]), f["n"], f["p"] - p0) for f in fetched]
        big = max(fetched, key=lambda f: f["n"], default=None)
        if big is not None and big["p"] - p0 < result.switch_fetched_ms:
            drawn_at = p0 + result.switch_fetched_ms
            result.busy_fetch = (drawn_at - big["p"], busy_ms(page, big["p"], drawn_at))
        if result.fetched_bytes < 64 * 1024:
            result.notes.append(f"layer {far} came with {result.fetched_bytes} B: it was not fetched")
        since = page.evaluate("() => Date.now()")
        cached = [switch(page, to, comm, full=False, timeout=10 * scale)[1] for to in (shown, far, shown, far, shown)]
        result.switch_cached_ms = statistics.median(cached)
        result.cached_bytes = widget_bytes(page, comm, since)
        if result.cached_bytes >= 64 * 1024:
            result.notes.append(f"{result.cached_bytes} B came during the cached switches: not all from cache")
        if page_errors:
            result.notes.append(f"page errors: {page_errors[:3]}")
        execute_in_kernel(page, "w.close(); del w")  # the next link's page must not load this widget
    except (E2ETimeout, AssertionError, RuntimeError) as exc:
        result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    except Exception as exc:  # noqa: BLE001 - one link's failure is a row of the table, not a crash
        result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        with contextlib.suppress(Exception):  # the screenshot is a help, not the result
            fail_with_screenshot(page, f"bench-link-{link}")
    finally:
        page.close()
    if result.error:
        result.kernel = None
        with contextlib.suppress(Exception):  # the next link starts its own kernel
            server.shut_down_kernels()
    return result


def fmt(value: float | None, unit: str, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f} {unit}"


def mb(n: int | None) -> str:
    return "-" if n is None else f"{n / MB:.2f} MB"


def report(results: list[Result], args: argparse.Namespace) -> bool:
    """Print the table and the targets; True when every target measured was met."""
    print(f"\nn={args.n}, GPT-2-small shape 12x12, random weights; slow link = {args.mbit:g} Mbit/s each way, "
          f"{args.rtt_ms:g} ms round trip\n")
    head = ["link", "explain()", "before 1st view", "total", "speculative", "settled", "1st view after explain()",
            "switch cached", "switch fetched", "fetched full", "fetched bytes"]
    rows = []
    for r in results:
        rows.append([r.link, fmt(r.explain_s, "s"), mb(r.bytes_before), mb(r.bytes_total), mb(r.speculative),
                     "yes" if r.settled else "no", fmt(r.first_view_s, "s"), fmt(r.switch_cached_ms, "ms", 1),
                     fmt(r.switch_fetched_ms, "ms", 1), fmt(r.switch_full_ms, "ms", 1), mb(r.fetched_bytes)])
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    for row in [head, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(f"{c!s:{w}}" for c, w in zip(row, widths, strict=True)) + " |")
    for r in results:
        if r.error:
            print(f"{r.link}: FAILED, the numbers above are what it measured before: {r.error}")
        if r.package:
            how = ("" if r.reused is None else
                   ", the previous link's kernel" if r.reused == r.kernel else ", NOT the previous link's kernel")
            print(f"{r.link}: the kernel imported {r.package}{how}")
        if r.timeline and r.first_view_s is not None:
            arrived = ", ".join(f"{name} {mb(n)} at {at:+.2f} s" for name, n, at in r.timeline)
            print(f"{r.link}: after explain() returned, the widget's messages arrived whole: {arrived}; "
                  f"first view at {r.first_view_s:+.2f} s")
        if r.fetch_timeline and r.switch_fetched_ms is not None:
            arrived = ", ".join(f"{name} {mb(n)} at {at:.0f} ms" for name, n, at in r.fetch_timeline)
            print(f"{r.link}: after the fetched switch the widget's messages arrived whole: {arrived}; "
                  f"drawn at {r.switch_fetched_ms:.0f} ms")
        for what, pair in (("the last message before the first view", r.busy_first),
                           ("the fetched layer's arrival", r.busy_fetch)):
            if pair is not None:
                print(f"{r.link}: from {what} to its draw: {pair[0]:.0f} ms, of which the page's main thread ran "
                      f"long tasks for {pair[1]:.0f} ms")
        for phase, types in r.breakdown.items():
            parts = ", ".join(f"{name} {n} msg {mb(size)}" for name, (n, size) in sorted(types.items()))
            print(f"{r.link}: {phase} the first view: {parts}")
        if r.link_down is not None:
            print(f"{r.link}: the proxy carried {mb(r.link_down)} down from the explain cell's run to settled "
                  f"(every connection: page, HTTP, websocket framing)")
        for note in r.notes:
            print(f"{r.link}: {note}")
    print("\n#16 targets (ratio = measured / target; <= 1 is met):")
    ok = True
    for r in results:
        measured = {"first_view_s": r.first_view_s, "switch_cached_ms": r.switch_cached_ms,
                    "switch_fetched_ms": r.switch_fetched_ms,
                    "speculative_MB": None if r.speculative is None else r.speculative / MB}
        for key, target in TARGETS[r.link].items():
            value = measured[key]
            name, unit = key.rsplit("_", 1)
            if value is None:
                print(f"  {r.link:6s} {name:15s} <= {target:g} {unit}: not measured"
                      + (f" (the run failed: {r.error})" if r.error else ""))
                ok = False
                continue
            met = value <= target
            ok &= met
            shown = f"{value:.1f}" if unit == "ms" else f"{value:.2f}"
            print(f"  {r.link:6s} {name:15s} <= {target:g} {unit}: {shown} {unit}, ratio {value / target:.2f} "
                  f"{'met' if met else 'MISSED'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1024, help="tokens (default 1024)")
    parser.add_argument("--links", default="direct,slow", help="direct, slow or both (default direct,slow)")
    parser.add_argument("--mbit", type=float, default=10.0, help="slow link: Mbit/s each way (default 10)")
    parser.add_argument("--rtt-ms", type=float, default=100.0, help="slow link: round trip, ms (default 100)")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds after the first view before the widget's traffic counts as settled (default 10)")
    args = parser.parse_args()
    links = [name.strip() for name in args.links.split(",") if name.strip()]
    unknown = set(links) - set(TARGETS)
    if unknown:
        parser.error(f"unknown link(s) {sorted(unknown)}: use direct and/or slow")
    started = time.monotonic()
    results = []
    env = {"PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}
    with JupyterLabServer(env=env) as server, browser(viewport=(1400, 1000)) as context:
        kernel = None
        for link in links:
            t0 = time.monotonic()
            if link == "slow":
                with slowlink.start(server.port, mbit=args.mbit, rtt_ms=args.rtt_ms) as proxy:
                    results.append(measure(context, server, link, args, proxy, kernel=kernel))
            else:
                results.append(measure(context, server, link, args, kernel=kernel))
            kernel = results[-1].kernel
            print(f"{link}: measured in {time.monotonic() - t0:.0f} s"
                  + (f" (failed: {results[-1].error})" if results[-1].error else ""), flush=True)
    ok = report(results, args)
    print(f"\nbench_link took {time.monotonic() - started:.0f} s")
    sys.exit(0 if ok and not any(r.error for r in results) else 1)


if __name__ == "__main__":
    main()
