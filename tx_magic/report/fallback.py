"""A light static preview of a trace, for saved notebooks viewed where no widget manager runs
(GitHub, nbviewer, a notebook reopened without widget state): a small heat map of the last
layer's mean attention as an inline PNG, plus the tokens as escaped text. No script, no network.
"""

from __future__ import annotations

import base64
import html
import warnings
from collections.abc import Sequence

import numpy as np

from ..core.trace import Trace
from .png import encode_png

#: Heat maps show at most this many cells per side; longer texts are averaged in blocks.
MAX_CELLS = 160
#: Side of the drawn heat map in pixels, at most, and of one cell.
MAX_PIXELS = 360
MAX_CELL_PIXELS = 18
#: Rows at least this tall get their token written beside them.
LABEL_MIN_PIXELS = 12

_WHITE = np.array([255.0, 255.0, 255.0])
_MID = np.array([33.0, 113.0, 181.0])  # the widget's weight colour, #2171b5
_DARK = np.array([8.0, 48.0, 107.0])
_MASKED = np.array([232, 232, 232], dtype=np.uint8)


def preview_kind(trace: Trace) -> str:
    """The kind the preview shows: cross attention when there is one, else the first kind."""
    return "cross" if "cross" in trace.kinds else trace.kinds[0]


def heatmap_png(trace: Trace, kind: str | None = None, layer: int = -1) -> bytes:
    """PNG of the mean over heads of one layer (default: the last) of `kind`; rows are queries."""
    return _heatmap(trace, kind or preview_kind(trace), layer)[0]


def fallback_html(trace: Trace) -> str:
    """A small static HTML summary of `trace`'s attention (well under 100 KB), for a mime bundle's text/html."""
    kind = preview_kind(trace)
    layers, heads, _, _ = trace.shape(kind)
    png, width, height, block = _heatmap(trace, kind, -1)
    queries, keys = trace.tokens(kind)
    pooled = f" Cells average blocks of {block} x {block} tokens." if block > 1 else ""
    caption = (
        f"<b>tx_magic</b> · {_e(trace.model_name)} · {_e(kind)} attention, layer {layers - 1} (the last, 0-based), "
        f"mean of {heads} heads. Rows are query tokens, columns key tokens, in order; darker is more "
        f"attention (square-root scale).{pooled} A static preview: run the cell for the interactive views."
    )
    token_lines = [f"<div><b>{'Tokens' if queries is keys else 'Queries'}</b>: {_token_list(queries)}</div>"]
    if queries is not keys:
        token_lines.append(f"<div><b>Keys</b>: {_token_list(keys)}</div>")
    img = (
        f'<img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" width="{width}" height="{height}" '
        f'alt="{_e(kind)} attention heat map, layer {layers - 1}, mean of {heads} heads" '
        'style="display:block;image-rendering:pixelated;border:0">'
    )
    return (
        '<div class="txm-fallback" style="font:12px/1.45 sans-serif;max-width:760px">'
        f'<div style="margin:0 0 6px">{caption}</div>{_labelled(img, queries, height, block)}'
        f'<div style="margin:6px 0 0">{"".join(token_lines)}</div></div>'
    )


def _labelled(img: str, queries: Sequence[str], height: int, block: int) -> str:
    """The image with the query tokens beside its rows, when rows are tall enough to read."""
    cell = height // max(1, -(-len(queries) // block))
    if block > 1 or cell < LABEL_MIN_PIXELS:
        return img
    font = min(12, cell - 3)
    rows = "".join(
        f'<tr><td style="height:{cell}px;padding:0 6px 0 0;border:0;text-align:right;white-space:nowrap;'
        f'font-size:{font}px;line-height:1">{_e(t)}</td>'
        + (f'<td rowspan="{len(queries)}" style="padding:0;border:0;vertical-align:top">{img}</td>' if i == 0 else "")
        + "</tr>"
        for i, t in enumerate(queries)
    )
    return f'<table style="border-collapse:collapse;border:0;margin:0">{rows}</table>'


def _heatmap(trace: Trace, kind: str, layer: int) -> tuple[bytes, int, int, int]:
    """(PNG, width, height, block size) of the heat map of one layer of `kind`."""
    values, block = _pooled(trace, kind, layer)
    cell = max(1, min(MAX_CELL_PIXELS, MAX_PIXELS // max(values.shape)))
    rgb = np.repeat(np.repeat(_colour(values), cell, axis=0), cell, axis=1)
    return encode_png(rgb), rgb.shape[1], rgb.shape[0], block


def _pooled(trace: Trace, kind: str, layer: int) -> tuple[np.ndarray, int]:
    """(queries, keys) mean over heads, NaN where masked, averaged in blocks when long; and the block size."""
    # Accumulated in float64 without a float64 copy of the layer (a fresh 100 MB at 1024 tokens, 12 heads,
    # cost 0.3 s of page faults before the widget could be displayed).
    values = trace.attention(kind)[layer].mean(axis=0, dtype=np.float64)
    values[~trace.mask(kind) | ~np.isfinite(values)] = np.nan
    block = -(-max(values.shape) // MAX_CELLS)
    if block == 1:
        return values, 1
    q, k = values.shape
    rows, cols = -(-q // block), -(-k // block)
    padded = np.full((rows * block, cols * block), np.nan)
    padded[:q, :k] = values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-masked blocks stay NaN
        return np.nanmean(padded.reshape(rows, block, cols, block), axis=(1, 3)), block


def _colour(values: np.ndarray) -> np.ndarray:
    """White through blue to dark blue by weight (square root, relative to the largest), as the widget's
    matrix; masked cells grey."""
    masked = np.isnan(values)
    top = np.nanmax(values) if not masked.all() else 1.0
    t = np.where(masked, 0.0, values) / (top if top > 0 else 1.0)
    t = np.sqrt(np.clip(t, 0.0, 1.0))[..., None]
    low = _WHITE + (_MID - _WHITE) * np.minimum(t * 2, 1.0)
    rgb = np.where(t <= 0.5, low, _MID + (_DARK - _MID) * (t * 2 - 1.0))
    rgb = np.rint(rgb).astype(np.uint8)
    rgb[masked] = _MASKED
    return rgb


def _token_list(tokens: Sequence[str]) -> str:
    return " · ".join(f'<span style="color:#888">{i}</span>&nbsp;{_e(t)}' for i, t in enumerate(tokens))


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
