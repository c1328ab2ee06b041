"""Self-contained HTML reports: the widget's renderer, its CSS and the data in one file.

The page needs no kernel, loader, CDN or network: the renderer bundle (``static/report.js``,
built from ``js/src/report.ts``) runs inline and reads the data from inline JSON. Token text
is data: JSON inside ``<script>`` escapes ``<``, ``>`` and ``&``, the renderer only sets
``textContent``, and a Content-Security-Policy lets nothing but the bundle run.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import pathlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import wire
from ..core.errors import TxMagicError
from ..core.trace import Trace
from ..core.version import __version__
from .budget import Encoding, LayerPlan, notice, plan_report

#: Default size limit of a report file, in bytes.
DEFAULT_MAX_BYTES = 20_000_000

_STATIC = pathlib.Path(__file__).resolve().parents[1] / "static"
_BUNDLE = _STATIC / "report.js"
_CSS = _STATIC / "widget.css"
#: Ids of the inline JSON elements, as js/src/report.ts reads them.
HEADER_ID = "txm-report-data"
TRACE_ID = "txm-trace-{}"

#: Bytes kept free per text for what the plan adds to the page (the notice, the list left out).
_NOTICE_ROOM = 2048

_SCRIPT_END = re.compile(r"</(script)", re.IGNORECASE)
_STYLE_END = re.compile(r"</(style)", re.IGNORECASE)

_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}

_PAGE_CSS = """
html, body { margin: 0; background: #fff; color: #1f2328; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; padding: 16px 20px; }
.txm-report-head { margin: 0 0 12px; }
.txm-report-title { font-size: 18px; font-weight: 600; margin: 0 0 6px; }
.txm-report-text { display: flex; flex-wrap: wrap; gap: 8px; align-items: baseline; }
.txm-report-text .txm-label { color: #636c76; }
.txm-text-select { max-width: 36em; font: inherit; }
.txm-report-source { white-space: pre-wrap; overflow-wrap: anywhere; max-height: 7.2em; overflow-y: auto; }
.txm-report-foot { margin-top: 12px; font-size: 12px; color: #636c76; }
@media (prefers-color-scheme: dark) {
  html, body { background: #1e1e22; color: #e6e6e6; }
  .txm-report-text .txm-label, .txm-report-foot { color: #9da5b0; }
}
"""


@dataclass(frozen=True)
class ReportText:
    """One text of a report: its trace and what was run (shown above the views)."""

    trace: Trace
    text: str | None = None
    pair: str | None = None
    target: str | None = None
    #: What the text selector shows for it (default: the text, shortened).
    label: str | None = None
    #: Activation-patching effects for the Effects tab (a widget's ``_patching``), None for none.
    patching: Any = None


class ShowsTrace(Protocol):
    """Anything that shows a trace (the widget)."""

    @property
    def trace(self) -> Trace: ...


#: What `render_html` and `save_html` accept for each text.
Reportable = Trace | ReportText | ShowsTrace


@dataclass(frozen=True)
class RenderedReport:
    """A report page and, per text, the notice saying which layers were left out, pooled or stored as
    8-bit values (None: every layer exactly), and whether layers were left out."""

    html: str
    notices: list[str | None]
    left_out: list[bool] = field(default_factory=list)


def render_html(traces: Reportable | Sequence[Reportable], *, title: str | None = None,
                max_bytes: int = DEFAULT_MAX_BYTES, selection: dict[str, Any] | None = None) -> str:
    """The report page of one or more traces (several get a text selector), as a string.

    Layers are inlined exactly (float32) while they all fit in `max_bytes`, else as 8-bit values,
    else max-pooled (long inputs), leaving out the layers that still do not fit (see
    `tx_magic.report.budget`); the report says what it did. Raises `ReportTooLarge` when not even
    the first layer of each text fits. `selection` is what the page opens on: ``kind``, ``layer``,
    ``heads``, ``head`` (the widget's traits), each optional.
    """
    return render_report(traces, title=title, max_bytes=max_bytes, selection=selection).html


def save_html(traces: Reportable | Sequence[Reportable], path: str | os.PathLike[str], *, title: str | None = None,
              max_bytes: int = DEFAULT_MAX_BYTES) -> pathlib.Path:
    """Write the report of a trace, a widget, or a list of them to `path`; returns the path."""
    out = pathlib.Path(path).expanduser()
    out.write_text(render_html(traces, title=title, max_bytes=max_bytes), encoding="utf-8")
    return out


def render_report(traces: Reportable | Sequence[Reportable], *, title: str | None = None,
                  max_bytes: int = DEFAULT_MAX_BYTES, selection: dict[str, Any] | None = None,
                  census: wire.CensusPanel | None = None) -> RenderedReport:
    """`render_html`, also returning what was left out of each text. `census` adds a Census tab
    (`tx_magic.report.census`); the views registered with `tx_magic.register_view` go in every report."""
    texts = _as_texts(traces)
    if not texts:
        raise ValueError("A report needs at least one trace.")
    bundle, css = _assets()
    title = title or f"tx_magic: {texts[0].trace.model_name}"
    metas = [_meta(t.trace) for t in texts]
    values = [_values(t.trace, m) for t, m in zip(texts, metas, strict=True)]
    views = wire.encode_views()
    extras: dict[str, Any] = {"views": [v["name"] for v in views]}
    if census is not None:
        extras["census"] = wire.as_base64(census)
    empty = _page(title, css, bundle, {**_header(texts, title, max_bytes, [None] * len(texts)), **extras},
                  [_trace_json(m, [], v, t.patching) for m, v, t in zip(metas, values, texts, strict=True)], views)
    room = max_bytes - len(empty.encode()) - _NOTICE_ROOM * len(texts)
    plans = plan_report([t.trace for t in texts], room, _block_cost)
    notices = [notice(t.trace, plan, max_bytes) for t, plan in zip(texts, plans, strict=True)]
    for meta, line in zip(metas, notices, strict=True):
        if line:
            meta["warnings"].append(line)
    header = {**_header(texts, title, max_bytes, plans), **extras}
    if selection:
        header["selection"] = dict(selection)
    data = [_trace_json(meta, _blocks(t.trace, plan), v, t.patching)
            for meta, t, plan, v in zip(metas, texts, plans, values, strict=True)]
    left_out = [any(plan.omitted.values()) for plan in plans]
    return RenderedReport(_page(title, css, bundle, header, data, views), notices, left_out)


def script_json(value: Any) -> str:
    """JSON that is safe inside ``<script>``: no ``<``, ``>``, ``&`` or line separators as such."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escape in _JSON_ESCAPES.items():
        text = text.replace(char, escape)
    return text


def script_text(code: str) -> str:
    """JavaScript safe inside ``<script>``: ``</script`` (any case) becomes ``<\\/script``, the same
    in strings and regexes. Only that sequence ends a script element; a blanket ``</`` -> ``<\\/``
    would break regexes such as ``/</g``."""
    if "<!--" in code:
        raise ValueError("the renderer bundle contains '<!--', which would change how the page parses it")
    return _SCRIPT_END.sub(lambda m: "<\\/" + m.group(1), code)


def _as_texts(traces: Reportable | Sequence[Reportable]) -> list[ReportText]:
    items = list(traces) if isinstance(traces, (list, tuple)) else [traces]
    out = []
    for item in items:
        if isinstance(item, ReportText):
            out.append(item)
        elif isinstance(item, Trace):
            out.append(ReportText(item))
        elif isinstance(shown := getattr(item, "trace", None), Trace):  # the widget
            out.append(ReportText(shown, patching=getattr(item, "_patching", None) or None))
        else:
            raise TypeError(f"expected a Trace, a ReportText or a widget, got {type(item).__name__}")
    return out


def _assets() -> tuple[str, str]:
    missing = [p for p in (_BUNDLE, _CSS) if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"tx_magic's renderer bundle is missing ({', '.join(map(str, missing))}). Reinstall the package "
            "(`pip install .` builds it with npm) or run `npm install && npm run build`."
        )
    css = _STYLE_END.sub(lambda m: "<\\/" + m.group(1), _CSS.read_text(encoding="utf-8"))
    return script_text(_BUNDLE.read_text(encoding="utf-8")), css


def _meta(trace: Trace) -> dict[str, Any]:
    """`wire.encode_meta` with its bytes (masks, thumbnails, statistics, a picture) as base64 text."""
    meta: dict[str, Any] = wire.as_base64(wire.encode_meta(trace))
    return meta


def _layer_blocks(trace: Trace, kind: str, layer: int, enc: Encoding) -> list[dict[str, Any]]:
    """One layer as the report stores it: its value block, and a streamed kind's top keys."""
    blocks: list[wire.Block] = [wire.encode_layer(trace, kind, layer, enc.dtype, enc.pool_of(trace, kind))]
    if enc.top_k(trace, kind):
        blocks.append(wire.encode_topk(trace, kind, layer, enc.top_k(trace, kind)))
    return [wire.as_base64(b) for b in blocks]


def _blocks(trace: Trace, plan: LayerPlan | None) -> list[dict[str, Any]]:
    if plan is None:
        return []
    return [block for kind, layers in plan.included.items() for layer in layers
            for block in _layer_blocks(trace, kind, layer, plan.encoding)]


def _b64_len(n: int) -> int:
    """Characters of `n` bytes in base64."""
    return 4 * -(-n // 3)


def _block_cost(trace: Trace, kind: str, enc: Encoding) -> int:
    """Bytes one layer of `kind` adds to the page: its JSON blocks with base64 bytes, plus commas."""
    layers, heads, q, k = trace.shape(kind)
    pool = enc.pool_of(trace, kind)
    rows, cols = -(-q // pool), -(-k // pool)
    layout = wire.layer_layout(trace, kind)  # a causal kind's layers send their lower half
    cells = heads * wire.layout_cells(rows, cols, layout)
    frame = {"kind": kind, "layer": layers, "dtype": enc.dtype, "shape": [heads, rows, cols], "pool": pool,
             "q0": 0, "k0": 0, "layout": layout, "data": ""}
    if enc.dtype == wire.DTYPE:
        cost = len(script_json(frame)) + _b64_len(cells * 4) + 1
    else:
        cost = len(script_json({**frame, "scale": ""})) + _b64_len(cells) + _b64_len(heads * rows * 4) + 1
    top = enc.top_k(trace, kind)
    if top:
        topk = {"kind": kind, "layer": layers, "dtype": wire.DTYPE_TOPK, "shape": [heads, q, top], "index": "",
                "data": ""}
        cost += len(script_json(topk)) + 2 * _b64_len(heads * q * top * 4) + 1
    return cost


def _header(texts: Sequence[ReportText], title: str, max_bytes: int,
            plans: Sequence[LayerPlan | None]) -> dict[str, Any]:
    return {
        "title": title,
        "generator": f"tx_magic {__version__} · {texts[0].trace.model_name} · "
                     "a self-contained report: it opens offline and loads nothing.",
        "max_bytes": max_bytes,
        "texts": [
            {
                "label": t.label or f"{i + 1}. {_shorten(t.text or _joined(t.trace))}",
                "text": t.text or _joined(t.trace),
                "pair": t.pair,
                "target": t.target,
                "omitted": [{"kind": k, "layers": v} for k, v in plan.omitted.items() if v] if plan else [],
            }
            for i, (t, plan) in enumerate(zip(texts, plans, strict=True))
        ],
    }


def _trace_json(meta: dict[str, Any], blocks: list[dict[str, Any]], values: list[dict[str, Any]],
                patching: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"meta": meta, "layers": blocks, "values": values}
    if patching:
        out["patching"] = wire.as_base64(patching)
    return out


def _values(trace: Trace, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Each kind's value norms (the widget's REQUEST_VALUE_NORMS reply, bytes as base64), so the report's
    "value" weighting works without a kernel; `meta`'s analyses then offer only that (no kernel answers
    the Q/K and Flow tabs). A kind whose norms cannot be had (no model, a long input) is left raw."""
    out, offered = [], {}
    for kind, names in wire.analyses(trace).items():
        if wire.ANALYSIS_VALUE not in names:
            continue
        try:
            content, buffers = wire.encode_value_norms(trace, kind)
        except (TxMagicError, wire.RequestError):
            continue
        out.append({"content": dict(content), "buffers": [base64.b64encode(b).decode("ascii") for b in buffers]})
        offered[kind] = [wire.ANALYSIS_VALUE]
    meta.pop("analyses", None)
    if offered:
        meta["analyses"] = offered
    return out


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def view_import_map(views: Sequence[wire.UserView]) -> str:
    """The import map that lets the renderer import each user view as ``txm-view:<index>``: a data: URL of
    its source, with the source's hash as its integrity, so the policy admits exactly that text."""
    imports, integrity = {}, {}
    for i, view in enumerate(views):
        url = "data:text/javascript;base64," + base64.b64encode(view["source"].encode("utf-8")).decode("ascii")
        imports[f"txm-view:{i}"] = url
        integrity[url] = _sha256(view["source"])
    return script_json({"imports": imports, "integrity": integrity})


def _page(title: str, css: str, bundle: str, header: dict[str, Any], traces: Sequence[dict[str, Any]],
          views: Sequence[wire.UserView] = ()) -> str:
    # Scripts run only by hash: the bundle; with user views also the import map and each view's source
    # (matched through the import map's integrity, CSP level 3), never data:, blob: or inline code at large.
    hashes = [_sha256(bundle)]
    view_map = ""
    if views:
        imports = view_import_map(views)
        hashes += [_sha256(imports), *(_sha256(v["source"]) for v in views)]
        view_map = f'<script type="importmap">{imports}</script>\n'
    sources = " ".join(f"'{digest}'" for digest in hashes)
    csp = f"default-src 'none'; script-src {sources}; style-src 'unsafe-inline'; img-src data: blob:"
    data = "\n".join(
        f'<script type="application/json" id="{TRACE_ID.format(i)}">{script_json(t)}</script>'
        for i, t in enumerate(traces)
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{css}</style>\n<style>{_PAGE_CSS}</style>\n{view_map}</head>\n<body>\n"
        "<div id=\"txm-report\"><noscript>This report draws its views with JavaScript: "
        "open it in a browser with scripts on.</noscript></div>\n"
        f'<script type="application/json" id="{HEADER_ID}">{script_json(header)}</script>\n'
        f"{data}\n<script>{bundle}</script>\n</body>\n</html>\n"
    )


def _joined(trace: Trace) -> str:
    """A readable stand-in for the text of a trace: its non-special tokens."""
    queries, _ = trace.tokens()
    return " ".join(t for t, special in zip(queries.text, queries.special, strict=True) if not special)


def _shorten(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
