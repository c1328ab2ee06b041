"""bench_long's browser side: a long trace's widget drawn in headless Chromium, then zoomed to exact cells.

The page is the benchmark's widget host (bench_attention.prepare_browser_page) fed the widget's state
as the front end receives it (pages.write_state); its custom messages reach the live widget in this
process (pages.serve_kernel), so the blocks the zoom asks for are fetched as in a notebook. Printed:

- drawn: seconds from opening the page until the widget says it is ready, with the matrix's pool,
  window and whether its cells are approximate, and whether its canvas has any non-blank pixel;
- zoom: each double-click on the matrix (4x per step, centred on a cell below the diagonal) until the
  matrix draws exact cells (pool 1, not approximate): the window and seconds of each step;
- values: the tooltips of cells in the exact window against `trace.block(...)` averaged over the heads
  (the widget's default view: all heads, mean), to its 4 significant digits.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import time
from typing import Any

from bench_attention import browser_context, prepare_browser_page
from bench_long import say
from pages import serve_kernel

DRAW_TIMEOUT_MS = 300_000
SHOT = os.environ.get("TXM_LONG_SCREENSHOT")  # a path: the page, zoomed to exact cells, saved there
STEP_TIMEOUT_MS = 120_000
MAX_STEPS = 10
MATRIX = '[data-view="matrix"]'
EXACT_WINDOW_CELLS = 512 * 512  # as js/src/views/matrix-cells.ts: a zoomed window this small fetches its exact cells


def matrix_data(page: Any) -> dict[str, str]:
    return page.evaluate(f"() => ({{...document.querySelector('{MATRIX}').dataset}})")


def canvas_drawn(page: Any) -> bool:
    """Whether the matrix's base canvas has a painted pixel that is not pure white (near-uniform weights
    over thousands of keys are very light)."""
    return page.evaluate(f"""() => {{
        const c = document.querySelector('{MATRIX} canvas.txm-matrix-base');
        if (!c || !c.width || !c.height) return false;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 0; i < d.length; i += 4)
          if (d[i + 3] > 0 && (d[i] < 255 || d[i + 1] < 255 || d[i + 2] < 255)) return true;
        return false;
    }}""")


def overlay_box(page: Any) -> dict[str, float]:
    return page.evaluate(f"""() => {{
        const r = document.querySelector('{MATRIX} canvas.txm-matrix-overlay').getBoundingClientRect();
        return {{x: r.left, y: r.top, w: r.width, h: r.height}};
    }}""")


def window_of(data: dict[str, str]) -> tuple[int, int, int, int]:
    q0, q1, k0, k1 = (int(v) for v in data["window"].split(","))
    return q0, q1, k0, k1


def cell_point(box: dict[str, float], w: tuple[int, int, int, int], q: int, k: int) -> tuple[float, float]:
    q0, q1, k0, k1 = w
    return (box["x"] + (k - k0 + 0.5) * box["w"] / (k1 - k0), box["y"] + (q - q0 + 0.5) * box["h"] / (q1 - q0))


def zoom_to_exact(page: Any, n: int) -> list[dict[str, Any]]:
    """Double-click until the matrix draws exact cells: each step's window, seconds until the new window
    is drawn (pooled), and for a window small enough to fetch, seconds until its exact cells are drawn."""
    steps: list[dict[str, Any]] = []
    target = (int(n * 0.6), int(n * 0.4))  # a query below the diagonal, an earlier key
    for _ in range(MAX_STEPS):
        data = matrix_data(page)
        if data.get("pool") == "1" and data.get("approx") == "0":
            break
        before = data["window"]
        x, y = cell_point(overlay_box(page), window_of(data), *target)
        start = time.perf_counter()
        page.mouse.dblclick(x, y)
        page.wait_for_function(f"(before) => document.querySelector('{MATRIX}').dataset.window !== before",
                               arg=before, timeout=STEP_TIMEOUT_MS, polling=10)
        drawn_s = time.perf_counter() - start
        after = matrix_data(page)
        q0, q1, k0, k1 = window_of(after)
        exact_s = None
        if (q1 - q0) * (k1 - k0) <= EXACT_WINDOW_CELLS:
            page.wait_for_function(f"""() => {{ const d = document.querySelector('{MATRIX}').dataset;
                return d.pool === '1' && d.approx === '0'; }}""", timeout=STEP_TIMEOUT_MS, polling=10)
            exact_s = time.perf_counter() - start
            after = matrix_data(page)
        steps.append({"window": after["window"], "pool": after["pool"], "approx": after["approx"],
                      "s": drawn_s, "exact_s": exact_s})
    return steps


def tooltip_values(page: Any, w: tuple[int, int, int, int], cells: list[tuple[int, int]]) -> list[str]:
    box = overlay_box(page)
    out = []
    for q, k in cells:
        page.mouse.move(*cell_point(box, w, q, k))
        page.wait_for_function(
            f"""() => {{ const v = document.querySelector('{MATRIX} .txm-tooltip-value');
                return v && v.textContent && !v.textContent.startsWith('≈'); }}""", timeout=STEP_TIMEOUT_MS)
        out.append(page.evaluate(f"() => document.querySelector('{MATRIX} .txm-tooltip-value').textContent"))
    return out


def check_values(trace: Any, layer: int, w: tuple[int, int, int, int], page: Any) -> tuple[int, float]:
    """Tooltips of cells below the diagonal in window `w` against the heads' mean of `trace.block`:
    (cells checked, worst relative difference)."""
    q0, q1, k0, k1 = w
    cells = [(q, k) for q in range(q0, q1, max(1, (q1 - q0) // 4)) for k in range(k0, k1, max(1, (k1 - k0) // 4))
             if k <= q][:8]
    shown = tooltip_values(page, w, cells)
    worst = 0.0
    for (q, k), text in zip(cells, shown, strict=True):
        want = float(trace.block("self", layer, q, q + 1, k, k + 1).mean(axis=0)[0, 0])
        got = float(text)
        worst = max(worst, abs(got - want) / max(abs(want), 1e-12))
    return len(cells), worst


def report(page: Any, url: str, trace: Any, n: int) -> None:
    """In an open browser page: the first draw, the zoom to exact cells and the tooltips' values, printed."""
    start = time.perf_counter()
    page.goto(f"{url}/index.html", wait_until="commit")
    page.wait_for_function("document.querySelector('.txm-root[data-ready=\"1\"]') !== null "
                           f"&& document.querySelector('{MATRIX}')?.dataset.pool !== undefined",
                           timeout=DRAW_TIMEOUT_MS, polling=50)
    drawn_s = time.perf_counter() - start
    data = matrix_data(page)
    say(f"  browser: drawn {drawn_s:.2f} s from opening the page: matrix layer {data.get('drawnLayer')}"
        f", pool {data.get('pool')}, window {data.get('window')}, approx {data.get('approx')}, "
        f"canvas {'drawn' if canvas_drawn(page) else 'BLANK'}")
    steps = zoom_to_exact(page, n)
    for i, step in enumerate(steps, 1):
        exact = f", exact cells drawn at {step['exact_s']:.2f} s" if step["exact_s"] else ""
        say(f"    zoom {i}: window {step['window']} drawn in {step['s']:.2f} s{exact}; "
            f"pool {step['pool']}, approx {step['approx']}")
    data = matrix_data(page)
    if data.get("pool") != "1" or data.get("approx") != "0":
        say(f"  zoom: NOT exact after {len(steps)} steps ({data})")
        return
    total = sum(s["exact_s"] or s["s"] for s in steps)
    painted = "drawn" if canvas_drawn(page) else "BLANK"
    say(f"  zoom: exact cells after {len(steps)} double-clicks, {total:.2f} s in all; canvas {painted}")
    if SHOT:
        page.screenshot(path=SHOT)
    count, worst = check_values(trace, int(data["drawnLayer"]), window_of(data), page)
    say(f"  tooltips: {count} exact cells against the heads' mean of trace.block, worst relative "
        f"difference {worst:.1e} ({'ok' if worst <= 1e-3 else 'OVER 1e-3'}, 4 digits shown)")


def measure(widget: Any, trace: Any, n: int, outdir: pathlib.Path) -> None:
    """Open the widget, whose state `outdir` holds (pages.write_state), in headless Chromium and print
    drawn, zoom and value checks (module docstring)."""
    from playwright.sync_api import sync_playwright

    prepare_browser_page("tx_magic", outdir)
    server, url = serve_kernel(widget, outdir)
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
            context = browser_context(pw, profile)
            try:
                page = context.new_page()
                page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(url)
                           else route.abort())
                report(page, url, trace, n)
            finally:
                context.close()
    finally:
        server.shutdown()
