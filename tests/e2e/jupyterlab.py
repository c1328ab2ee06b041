"""End-to-end harness: a throw-away JupyterLab server and a headless Chromium, both offline.

Built from the recipe in ``/work/shared/notes/browser-testing.md``:

* :class:`JupyterLabServer` starts ``python -m jupyter lab`` with *this* interpreter (so its
  kernel is the same environment's Python) on a free loopback port, in a temporary root with
  isolated config/runtime/data/IPython folders, no token, no news, and its own process group.
* :func:`browser` opens a persistent Chromium context (Debian's ``chromium``, never a
  Playwright download) with the flags that keep it quiet on a closed network.
* :func:`open_notebook`, :func:`run_all_and_wait` (both at once: :func:`run_notebook`) and
  :func:`execute_in_kernel` drive the notebook through ``window.jupyterapp``
  (``expose_app_in_browser``) rather than through menus.

The fixtures built on these (one server and one browser for the package) are in ``conftest.py``.

Every wait has a timeout. When one runs out it raises :class:`E2ETimeout`, whose message says
what was awaited and where a screenshot of the page was saved (``test-output/`` at the
repository root, which git ignores).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # playwright is imported lazily so a missing install gets a helpful message
    from playwright.sync_api import BrowserContext, Page
    from typing_extensions import Self  # typing.Self from Python 3.11

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
#: Where failure screenshots and other test artefacts go (gitignored).
OUTPUT_DIR = REPO_ROOT / "test-output"

#: Chromium flags that make it run headless as root in a container without phoning home.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)

INSTALL_HINT = (
    "The browser tests need Debian's Chromium and the Python Playwright package:\n"
    "    apt-get update && apt-get install -y chromium fonts-dejavu-core\n"
    "    pip install -e .[test]\n"
    "(never `playwright install`: its browser download does not work offline)."
)


class BrowserUnavailable(RuntimeError):
    """Chromium or the Playwright package is missing; the message says how to install them."""


class E2ETimeout(AssertionError):
    """A wait ran out; the message names what was awaited and the screenshot taken."""


# ---------------------------------------------------------------------------------------------
# JupyterLab server
# ---------------------------------------------------------------------------------------------

def wait_until_serving(server: ServerProcess, url: str) -> None:
    """Poll `url` until it answers 200 while the server's process runs; on exit or after
    `server.startup_timeout` seconds stop the server and raise with its log's tail."""
    name = server.NAME
    deadline = time.monotonic() + server.startup_timeout
    while True:
        if server._proc.poll() is not None:
            log = server.log_tail()
            code = server._proc.returncode
            server.stop()
            raise RuntimeError(f"{name} exited with code {code} while starting:\n{log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            log = server.log_tail()
            server.stop()
            raise E2ETimeout(f"{name} did not answer {url} within {server.startup_timeout:.0f} s. Server log:\n{log}")
        time.sleep(0.25)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A throw-away server on a free loopback port, in its own process group and temporary
    folder, used as a context manager. Subclasses say what to run in :meth:`start`.

    :meth:`stop` ends the whole process group (whatever the server spawned goes with it) and
    removes the folder, unless ``TX_MAGIC_KEEP_SERVER_DIR=1`` asks to keep it for a post-mortem.
    """

    #: The server's name in messages.
    NAME = "server"

    def __init__(self, *, startup_timeout: float = 60.0) -> None:
        self.startup_timeout = startup_timeout
        self.port = 0
        self.base = pathlib.Path()
        self.log_path = pathlib.Path()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        """Base URL of the server, with a trailing slash."""
        return f"http://127.0.0.1:{self.port}/"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def launch(self, cmd: list[str], *, cwd: pathlib.Path, env: dict[str, str], ready_path: str) -> None:
        """Run `cmd` in a new session, its output in :attr:`log_path`, and wait until
        ``GET <url><ready_path>`` answers."""
        self._log = self.log_path.open("wb")
        self._proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        wait_until_serving(self, self.url + ready_path)

    def before_stop(self) -> None:
        """Called while the server still runs, just before it is stopped."""

    def stop(self) -> None:
        """Stop the server's whole process group and remove its files."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                self.before_stop()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
            # Anything left in the group (helpers the server spawned) goes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
        keep = os.environ.get("TX_MAGIC_KEEP_SERVER_DIR") == "1"
        if self.base != pathlib.Path() and self.base.exists() and not keep:
            shutil.rmtree(self.base, ignore_errors=True)

    def log_tail(self, chars: int = 4000) -> str:
        """The last `chars` characters of the server's combined stdout/stderr."""
        if self._log is not None:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return f"(no {self.NAME} log)"


class JupyterLabServer(ServerProcess):
    """A throw-away JupyterLab on 127.0.0.1, used as a context manager.

    >>> with JupyterLabServer() as server:          # doctest: +SKIP
    ...     nb = server.write_notebook("t.ipynb", ["1 + 1"])
    ...     print(server.url)

    The server runs ``sys.executable -m jupyter lab``, so the stock ``python3`` kernel spec of
    this environment (found under ``sys.prefix/share/jupyter``) runs this same interpreter.
    ``JUPYTER_CONFIG_DIR``, ``JUPYTER_DATA_DIR``, ``JUPYTER_RUNTIME_DIR`` and ``IPYTHONDIR``
    point into the temporary folder, so no user configuration, extension or startup script
    leaks in. ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` reach the kernel.
    """

    NAME = "JupyterLab"
    #: The ``jupyter`` subcommand and the class its lab options are set on (Notebook 7 overrides).
    APP = ("lab", "LabApp")
    #: Where a notebook opens (``<url><TREE><path>``), and what :func:`open_notebook` waits for.
    TREE = "lab/tree/"
    OPENED = "notebook {path} to open with a connected, idle kernel"

    def __init__(self, *, startup_timeout: float = 60.0, env: dict[str, str] | None = None) -> None:
        super().__init__(startup_timeout=startup_timeout)
        self.extra_env = dict(env or {})
        self.root_dir = pathlib.Path()

    def start(self) -> None:
        """Start the server and wait until ``/api/status`` answers."""
        self.base = pathlib.Path(tempfile.mkdtemp(prefix="txm-jupyterlab-"))
        self.root_dir = self.base / "root"
        dirs = {name: self.base / name for name in ("config", "data", "runtime", "ipython", "settings", "workspaces")}
        for d in [self.root_dir, *dirs.values()]:
            d.mkdir(parents=True)
        # Without this the "Get notified about Jupyter news?" toast covers the page.
        notif = dirs["settings"] / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        notif.parent.mkdir(parents=True)
        notif.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))

        env = dict(os.environ)
        env.update({
            "JUPYTER_CONFIG_DIR": str(dirs["config"]),
            "JUPYTER_DATA_DIR": str(dirs["data"]),
            "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
            "IPYTHONDIR": str(dirs["ipython"]),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
        })
        env.pop("JUPYTER_PATH", None)  # the kernel spec must come from sys.prefix, not elsewhere
        env.update(self.extra_env)

        self.port = free_port()
        self.log_path = self.base / "jupyterlab.log"
        self.launch(self.command(dirs), cwd=self.root_dir, env=env, ready_path="api/status")

    def command(self, dirs: dict[str, pathlib.Path]) -> list[str]:
        """The server's command line: loopback, no token, isolated settings, the app exposed to the page."""
        sub, app = self.APP
        return [
            sys.executable, "-m", "jupyter", sub, "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
            "--IdentityProvider.token=", "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True", "--ServerApp.allow_root=True",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--{app}.expose_app_in_browser=True",
            f"--{app}.user_settings_dir={dirs['settings']}",
            f"--{app}.workspaces_dir={dirs['workspaces']}",
            *self.app_options(),
        ]

    def app_options(self) -> list[str]:
        """Options only JupyterLab has: no news, no update check, no extension manager."""
        return [
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
        ]

    def before_stop(self) -> None:
        # Kernels run in their own sessions (jupyter_client starts them so), so ask the server to
        # shut them down rather than relying on the group kill.
        with contextlib.suppress(Exception):
            self.shut_down_kernels()

    # -- helpers --------------------------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        """Call the server's REST API (no token is set); returns the decoded JSON, or None."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def kernel_ids(self) -> set[str]:
        """The ids of the kernels running on the server now."""
        return {kernel["id"] for kernel in self.api("GET", "api/kernels")}

    def shut_down_kernels(self, keep: set[str] | frozenset[str] = frozenset()) -> None:
        """Shut down every kernel on the server but those in `keep`."""
        for kernel_id in self.kernel_ids() - keep:
            self.api("DELETE", f"api/kernels/{kernel_id}", timeout=10)

    def reset_workspace(self) -> None:
        """Forget the default workspace, so the next page opens only the notebook it asks for.

        JupyterLab saves which documents are open on the server and reopens them (starting
        their kernels) on every page load; a page that follows another on the same server
        would find the earlier notebooks open beside its own.
        """
        try:
            self.api("DELETE", "lab/api/workspaces/default")
        except urllib.error.HTTPError as exc:
            if exc.code != 404:  # 404: nothing saved yet
                raise

    def write_notebook(self, name: str, cells: list[str]) -> pathlib.Path:
        """Write a notebook of code `cells` (Python 3 kernel) into the server root; returns its path."""
        import nbformat

        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
        path = self.root_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(path))
        return path


# ---------------------------------------------------------------------------------------------
# Browser
# ---------------------------------------------------------------------------------------------

def chromium_path() -> str:
    """Path of the system Chromium, or :class:`BrowserUnavailable` with install instructions."""
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if path is None:
        raise BrowserUnavailable("Chromium is not installed (no `chromium` on PATH).\n" + INSTALL_HINT)
    return path


@contextlib.contextmanager
def browser(*, viewport: tuple[int, int] = (1400, 1000), headless: bool = True) -> Iterator[BrowserContext]:
    """A headless Chromium context (Playwright sync API) on a fresh profile folder.

    Raises :class:`BrowserUnavailable` (with how to install) when Chromium or Playwright is missing.
    """
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise BrowserUnavailable(f"The Python package `playwright` is missing ({exc}).\n" + INSTALL_HINT) from exc
    profile = tempfile.mkdtemp(prefix="txm-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=executable, headless=headless, args=list(CHROMIUM_ARGS),
                viewport={"width": viewport[0], "height": viewport[1]},
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def save_screenshot(page: Page, name: str) -> pathlib.Path | None:
    """Save a full-page screenshot as ``test-output/<name>.png``; None if the page can't be shot."""
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:80] or "page"
    path = OUTPUT_DIR / f"{slug}.png"
    try:
        page.screenshot(path=str(path), full_page=True, timeout=10_000)
    except Exception:  # noqa: BLE001 - a failed screenshot must not hide the real failure
        return None
    return path


def fail_with_screenshot(page: Page, what: str, detail: str = "") -> E2ETimeout:
    """Build the :class:`E2ETimeout` for `what`, after saving a screenshot of `page`."""
    shot = save_screenshot(page, "timeout-" + what)
    where = f"screenshot: {shot}" if shot else "no screenshot could be taken"
    return E2ETimeout(f"Timed out waiting for {what}{': ' + detail if detail else ''} ({where})")


def wait_for_js(page: Page, predicate: str, what: str, *, arg: Any = None, timeout: float = 30.0,
                describe: str | None = None) -> Any:
    """Wait until the JS function `predicate` (``(arg) => value``) returns something truthy.

    On timeout raises :class:`E2ETimeout` naming `what`; `describe` (a JS function of `arg`)
    may add what the page looked like at that moment.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        handle = page.wait_for_function(predicate, arg=arg, timeout=timeout * 1000, polling=100)
        return handle.json_value()
    except PlaywrightTimeout:
        detail = ""
        if describe is not None:
            with contextlib.suppress(Exception):
                detail = json.dumps(page.evaluate(describe, arg))
        raise fail_with_screenshot(page, what, f"after {timeout:.0f} s {detail}".strip()) from None


def wait_for_attribute(page: Page, selector: str, name: str, value: str, *, timeout: float = 10.0) -> None:
    """Wait until the first element matching `selector` has attribute `name` equal to `value`."""
    wait_for_js(
        page,
        "([sel, name, value]) => { const e = document.querySelector(sel); "
        "return !!e && e.getAttribute(name) === value; }",
        f"{selector} to have {name}={value!r}", arg=[selector, name, value], timeout=timeout,
        describe="([sel, name]) => { const e = document.querySelector(sel); "
                 "return e ? {[name]: e.getAttribute(name)} : 'no element ' + sel; }",
    )


# JS: the notebook panel in focus, with its kernel.
_KERNEL_READY = """(path) => {
  const app = window.jupyterapp;
  const w = app && app.shell && app.shell.currentWidget;
  const ctx = w && w.sessionContext;
  const k = ctx && ctx.session && ctx.session.kernel;
  // The notebook asked for, not another one JupyterLab restored from the workspace.
  return !!(w && w.content && w.context && w.context.isReady && w.context.path === path && k
            && k.connectionStatus === 'connected' && k.status === 'idle');
}"""

_KERNEL_STATE = """() => {
  const app = window.jupyterapp;
  if (!app) return 'window.jupyterapp is missing (expose_app_in_browser off?)';
  const w = app.shell.currentWidget;
  if (!w) return 'no current widget';
  const k = w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return {widget: w.title && w.title.label, path: w.context && w.context.path,
          ready: !!(w.context && w.context.isReady),
          kernel: k ? {connection: k.connectionStatus, status: k.status} : null};
}"""


def open_notebook(page: Page, server: JupyterLabServer, path: pathlib.Path | str, *, timeout: float = 60.0) -> None:
    """Open notebook `path` (absolute, or relative to the server root) and wait for an idle kernel.

    In JupyterLab that is ``lab/tree/<path>``; in Notebook 7 (``server.TREE``) the notebook's
    own page, ``notebooks/<path>``.
    """
    rel = pathlib.Path(path)
    if rel.is_absolute():
        rel = rel.relative_to(server.root_dir)
    page.goto(f"{server.url}{server.TREE}{rel.as_posix()}", wait_until="domcontentloaded", timeout=timeout * 1000)
    wait_for_js(page, _KERNEL_READY, server.OPENED.format(path=rel), arg=rel.as_posix(), timeout=timeout,
                describe=_KERNEL_STATE)


def run_all_and_wait(page: Page, *, timeout: float = 120.0) -> None:
    """Run every cell (``notebook:run-all-cells``) and wait until each ran and the kernel is idle.

    Raises AssertionError with the exception's name and value when a cell failed.
    """
    page.evaluate("""() => {
      const w = window.jupyterapp.shell.currentWidget;
      for (const c of w.content.widgets) if (c.model.type === 'code') c.model.executionCount = null;
      window.__txmRunAll = window.jupyterapp.commands.execute('notebook:run-all-cells');
    }""")
    # On a loaded machine JupyterLab has been seen to drop the command (the kernel idle, no cell
    # queued); issue it once more then. A cell that started shows a count, a '*' or a busy kernel.
    started = """() => {
      const w = window.jupyterapp.shell.currentWidget;
      const k = w.sessionContext.session && w.sessionContext.session.kernel;
      const cells = w.content.widgets.filter(c => c.model.type === 'code');
      const prompts = [...w.node.querySelectorAll('.jp-InputArea-prompt')].map(p => p.textContent || '');
      return (k && k.status !== 'idle') || cells.some(c => c.model.executionCount !== null)
             || prompts.some(p => p.includes('*'));
    }"""
    try:
        wait_for_js(page, started, "a cell to start", timeout=min(15.0, timeout))
    except E2ETimeout:
        page.evaluate("() => { window.__txmRunAll = window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    wait_for_js(
        page,
        """() => {
          const w = window.jupyterapp.shell.currentWidget;
          const k = w.sessionContext.session && w.sessionContext.session.kernel;
          const cells = w.content.widgets.filter(c => c.model.type === 'code');
          const prompts = [...w.node.querySelectorAll('.jp-InputArea-prompt')].map(p => p.textContent || '');
          return !!k && k.status === 'idle' && cells.every(c => c.model.executionCount !== null)
                 && !prompts.some(p => p.includes('*'));
        }""",
        "every notebook cell to run and the kernel to be idle", timeout=timeout,
        describe="""() => {
          const w = window.jupyterapp.shell.currentWidget;
          const k = w.sessionContext.session && w.sessionContext.session.kernel;
          return {kernel: k && k.status, counts: w.content.widgets.filter(c => c.model.type === 'code')
                  .map(c => c.model.executionCount)};
        }""",
    )
    errors = page.evaluate("""() => {
      const out = [];
      for (const c of window.jupyterapp.shell.currentWidget.content.widgets) {
        if (c.model.type !== 'code') continue;
        for (let i = 0; i < c.model.outputs.length; i++) {
          const o = c.model.outputs.get(i).toJSON();
          if (o.output_type === 'error') out.push(`${o.ename}: ${o.evalue}`);
        }
      }
      return out;
    }""")
    if errors:
        shot = save_screenshot(page, "cell-error")
        raise AssertionError(f"A notebook cell raised: {errors} (screenshot: {shot})")


def run_notebook(page: Page, server: JupyterLabServer, name: str, cells: list[str], *, collapse: bool = True,
                 timeout: float = 120.0) -> pathlib.Path:
    """Write notebook `name` of code `cells` into the server's root, open it in `page`, give it
    the page's width (the left sidebar collapsed) unless `collapse` is false, and run every cell
    (:func:`run_all_and_wait`, `timeout` seconds). Returns the notebook's path."""
    path = server.write_notebook(name, cells)
    open_notebook(page, server, path)
    if collapse:
        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
    run_all_and_wait(page, timeout=timeout)
    return path


def execute_in_kernel(page: Page, code: str, *, timeout: float = 30.0) -> str:
    """Run `code` in the current notebook's kernel (not in a cell); return its printed output.

    Uses ``kernel.requestExecute`` from the page and collects ``stream`` messages from
    ``onIOPub``. Raises AssertionError when the code raised, :class:`E2ETimeout` when it
    did not finish within `timeout` seconds.
    """
    result = page.evaluate(
        """async ({code, timeout}) => {
          const w = window.jupyterapp.shell.currentWidget;
          const k = w.sessionContext.session.kernel;
          const future = k.requestExecute({code, silent: false, store_history: false, stop_on_error: true});
          let out = '', error = null;
          future.onIOPub = (msg) => {
            const t = msg.header.msg_type;
            if (t === 'stream') out += msg.content.text;
            else if (t === 'error') error = `${msg.content.ename}: ${msg.content.evalue}`;
          };
          let timer;
          const expired = new Promise((resolve) => { timer = setTimeout(() => resolve('timeout'), timeout); });
          const done = await Promise.race([future.done.then(() => 'done', (e) => 'failed: ' + e), expired]);
          clearTimeout(timer);
          return {out, error, done};
        }""",
        {"code": code, "timeout": timeout * 1000},
    )
    if result["done"] == "timeout":
        raise fail_with_screenshot(page, "kernel code to finish", f"{code!r} after {timeout:.0f} s")
    if result["error"]:
        raise AssertionError(f"Kernel code {code!r} raised {result['error']}\n{result['out']}")
    return str(result["out"])


def poll_kernel(page: Page, code: str, expected: str, what: str, *, timeout: float = 5.0,
                interval: float = 0.1) -> str:
    """Re-run `code` in the kernel until its stripped output equals `expected` (or time runs out)."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        last = execute_in_kernel(page, code).strip()
        if last == expected:
            return last
        if time.monotonic() > deadline:
            raise fail_with_screenshot(page, what, f"{code!r} printed {last!r}, expected {expected!r} "
                                                   f"after {timeout:.0f} s")
        time.sleep(interval)
