"""The renderer bundle the widget ships to the browser, and the small loader that imports it once per page."""

from __future__ import annotations

import hashlib
import pathlib

_STATIC = pathlib.Path(__file__).resolve().parents[1] / "static"
ESM = _STATIC / "widget.js"
CSS = _STATIC / "widget.css"

if not ESM.exists():  # pragma: no cover - a broken build must fail loudly, not draw a blank
    raise ImportError(
        f"tx_magic's renderer bundle is missing ({ESM}). Reinstall the package "
        "(`pip install .` builds it with npm) or run `npm install && npm run build`."
    )


BUNDLE = ESM.read_text(encoding="utf-8")
#: The widget's `_esm`: a small module that imports the renderer bundle (sent as `_bundle`) once
#: per page and keeps it. Hosts import `_esm` afresh for every widget, and a browser never frees
#: an imported module, so a cell re-run 50 times would otherwise hold 50 copies of the renderer.
LOADER = """const bundles = (globalThis.__tx_magic_bundles ??= new Map());
function renderer(model) {
  const id = model.get("_bundle_id");
  if (!bundles.has(id)) {
    const url = URL.createObjectURL(new Blob([model.get("_bundle")], { type: "text/javascript" }));
    bundles.set(id, import(url).finally(() => URL.revokeObjectURL(url)));
  }
  return bundles.get(id);
}
export default {
  async render(context) {
    try {
      const cleanup = (await renderer(context.model)).default.render(context);
      return () => {
        cleanup();
        // A removed view's model may outlive it (JupyterLab keeps closed models reachable):
        // let it drop its copy of the renderer, which this page has loaded already.
        // (Twice: Backbone keeps the value before the last set in _previousAttributes.)
        try { context.model.set("_bundle", ""); context.model.set("_bundle", ""); } catch (err) { /* gone */ }
      };
    } catch (err) {
      const box = document.createElement("div");
      box.className = "txm-error";
      box.textContent = "tx_magic could not load its renderer: " + (err && err.message ? err.message : err);
      context.el.append(box);
      return () => box.remove();
    }
  },
};
"""



#: A short id of the bundle's contents: a page keeps one copy per id.
BUNDLE_ID = hashlib.sha256(BUNDLE.encode()).hexdigest()[:16]
