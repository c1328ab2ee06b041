"""Reliability in a real JupyterLab and Chromium: many widgets, many re-runs, a kernel restart
under a live widget, and a front-end failure. Never a blank area, never an exception wall.

The module has a JupyterLab server of its own (``own_server``, not the package's shared one): it
restarts a kernel, measures a kernel's memory, and shuts every kernel of its server down after each
test. The package's browser (conftest.py) serves it; each test opens its own notebook in a new page.
Memory numbers are printed (run with -s to see them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from .jupyterlab import (
    JupyterLabServer,
    execute_in_kernel,
    run_notebook,
    save_screenshot,
    wait_for_js,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

READY = '.txm-root[data-ready="1"]'
SENTENCES = [
    "The animal didn't cross the street because it was too tired.",
    "A stitch in time saves nine.", "She sells sea shells by the sea shore.",
    "Colorless green ideas sleep furiously.", "Time flies like an arrow; fruit flies like a banana.",
    "The old man the boat.", "Buffalo buffalo Buffalo buffalo buffalo.", "I saw her duck.",
    "The horse raced past the barn fell.", "We painted the wall with cracks.",
]


@pytest.fixture
def page(own_server: JupyterLabServer, new_page: Any) -> Iterator[Any]:
    """A fresh page; its uncaught errors are kept in ``page.txm_errors``. The kernel is shut down after."""
    page = new_page()
    yield page
    page.close()
    own_server.shut_down_kernels()


def count_ready(page: Any) -> int:
    return int(page.evaluate(f"() => document.querySelectorAll('{READY}').length"))


def test_ten_widgets_in_one_notebook_all_draw(own_server, page):
    cells = ["%load_ext tx_magic"] + [f"%explain {s}" for s in SENTENCES]
    run_notebook(page, own_server, "ten.ipynb", cells)
    wait_for_js(page, f"() => document.querySelectorAll('{READY}').length === 10", "ten widgets drawn",
                timeout=90, describe=f"() => document.querySelectorAll('{READY}').length")
    # Each drew its own sentence (scrolled into view in turn: JupyterLab may not lay out far cells).
    firsts = page.evaluate("""() => [...document.querySelectorAll('.txm-root')].map(r =>
        [...r.querySelectorAll('[data-view="arc"] .txm-token[data-side="query"]')].slice(1, 3)
          .map(t => t.textContent.trim().toLowerCase()).join(' '))""")
    assert len(firsts) == 10 and len(set(firsts)) == 10, firsts
    assert page.locator(".txm-root .txm-error").count() == 0
    assert page.txm_errors == []


RERUN_JS = """async ({index, times}) => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cell = panel.content.widgets[index];
  const drawn = () => !!cell.node.querySelector('.txm-root[data-ready="1"]');
  for (let i = 0; i < times; i++) {
    const before = cell.model.executionCount;
    panel.content.activeCellIndex = index;
    await window.jupyterapp.commands.execute('notebook:run-cell');
    const t0 = performance.now();
    while (cell.model.executionCount === before || !drawn()) {
      if (performance.now() - t0 > 30000) return {done: i, error: 'timeout'};
      await new Promise(r => setTimeout(r, 20));
    }
  }
  return {done: times};
}"""

RSS = ("import gc, json, ctypes; gc.collect(); ctypes.CDLL('libc.so.6').malloc_trim(0); "
       "print(json.dumps(int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])))")


def js_heap(cdp: Any) -> int:
    cdp.send("HeapProfiler.collectGarbage")
    cdp.send("HeapProfiler.collectGarbage")
    return int(cdp.send("Runtime.getHeapUsage")["usedSize"])


def test_same_cell_rerun_50_times_keeps_memory_flat(own_server, page, context):
    cells = ["%load_ext tx_magic", f"w = %explain {SENTENCES[0]}\nw"]
    run_notebook(page, own_server, "rerun.ipynb", cells, collapse=False)
    wait_for_js(page, f"() => !!document.querySelector('{READY}')", "the widget drawn")
    cdp = context.new_cdp_session(page)
    warm = page.evaluate(RERUN_JS, {"index": 1, "times": 10})
    assert warm == {"done": 10}, warm
    kernel0, heap0 = json.loads(execute_in_kernel(page, RSS)) * 1024, js_heap(cdp)
    result = page.evaluate(RERUN_JS, {"index": 1, "times": 50})
    assert result == {"done": 50}, result
    kernel1, heap1 = json.loads(execute_in_kernel(page, RSS)) * 1024, js_heap(cdp)
    print(f"\n50 re-runs after 10 warm-up: kernel RSS {kernel0 / 2**20:.1f} -> {kernel1 / 2**20:.1f} MiB "
          f"({(kernel1 - kernel0) / kernel0:+.1%}); JS heap {heap0 / 2**20:.1f} -> {heap1 / 2**20:.1f} MiB "
          f"({(heap1 - heap0) / heap0:+.1%})")
    assert count_ready(page) == 1, "one widget: each re-run replaced the last"
    assert kernel1 <= kernel0 * 1.10, f"kernel RSS grew {(kernel1 - kernel0) / kernel0:.1%}"
    assert heap1 <= heap0 * 1.10, f"JS heap grew {(heap1 - heap0) / heap0:.1%}"
    assert page.txm_errors == []


def test_kernel_restart_under_a_live_widget_leaves_a_message(own_server, page):
    cells = ["%load_ext tx_magic", f"w = %explain {SENTENCES[0]}\nw"]
    run_notebook(page, own_server, "restart.ipynb", cells, collapse=False)
    wait_for_js(page, f"() => !!document.querySelector('{READY}')", "the widget drawn")
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()")
    wait_for_js(page, """() => { const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
                          return k.status === 'idle'; }""", "the kernel back after the restart", timeout=60)
    page.wait_for_timeout(1500)
    out = page.evaluate("""() => {
        const area = window.jupyterapp.shell.currentWidget.content.widgets[1].node.querySelector('.jp-OutputArea');
        return {text: (area.innerText || '').trim(), root: !!area.querySelector('.txm-root'),
                height: area.getBoundingClientRect().height};
      }""")
    save_screenshot(page, "reliability-kernel-restart")
    assert out["text"], f"blank output area after a kernel restart: {out}"
    assert "restart" in out["text"].lower() or "kernel" in out["text"].lower(), out
    assert page.txm_errors == [], page.txm_errors


CORRUPT = """import tx_magic
class Corrupt(tx_magic.AttentionWidget):
    def _on_custom_msg(self, _w, content, buffers):
        if isinstance(content, dict) and str(content.get('type', '')).startswith('get_'):
            reply = {k: v for k, v in content.items() if k != 'type'}
            self.send({**reply, 'type': 'layer', 'dtype': 'float32', 'shape': [99, 99, 99], 'pool': 1,
                       'q0': 0, 'k0': 0}, buffers=[b'\\x00\\x01\\x02'])
c = Corrupt(tx_magic.capture_text(None, None, 'The animal was too tired to cross.'), eager_budget=0)
c"""


def test_a_corrupt_layer_reply_shows_a_message_in_the_widget(own_server, page):
    run_notebook(page, own_server, "corrupt.ipynb", [CORRUPT], collapse=False)
    wait_for_js(page, "() => !!document.querySelector('.txm-root')", "the widget's root")
    execute_in_kernel(page, "c.layer = 4")
    wait_for_js(page, """() => /could not|error|failed|corrupt|does not match/i.test(
                           document.querySelector('.txm-root')?.innerText || '')""",
                "a message in the widget about the corrupt reply", timeout=40,
                describe="() => (document.querySelector('.txm-root')?.innerText || '').slice(0, 500)")
    text = page.evaluate("() => document.querySelector('.txm-root').innerText")
    save_screenshot(page, "reliability-corrupt-reply")
    assert len(text) < 3000, "a message, not an exception wall"
    assert page.txm_errors == [], page.txm_errors
