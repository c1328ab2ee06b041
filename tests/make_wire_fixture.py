"""Write js/tests/fixtures/wire-fixture.json: what the Python encoder sends, for the TS tests.

    python tests/make_wire_fixture.py

The fixture holds an encoder-decoder trace encoded by `tx_magic.wire` (``meta``: the ``_meta``
trait, ``layers``: every layer block as float32, bytes as base64 under the same keys) and the values
the renderer must decode (``expected``: ``"<kind>/<layer>"`` -> the flat float32 list,
``expected_masks``: kind -> flat 0/1 list, 1 = allowed, ``expected_thumbnails``: kind -> flat uint8
list (layer, head, T, T)). Wire v2 adds:

- ``blocks_v2``: [{"block": an encoded value block, "expected": its flat decoded values as Python
  decodes them (uint8: byte / 255 * scale)}] for a uint8 whole layer, a uint8 block pooled 2 x 2 with a
  partial last tile, and an exact float32 window with q0, k0 > 0;
- ``topk``: {"block": an encoded top-k block, "expected_index", "expected_data"} (flat lists);
- ``streamed``: {"meta": the ``_meta`` of a small streamed trace (stats, head_types), "expected_stats":
  name -> flat float32 list (layer, head)}.

Deterministic: same output every run, so tests/test_wire_in_step.py can check the file matches what
the encoder writes now.
"""

from __future__ import annotations

import base64
import importlib
import json
import pathlib
import sys
import types
from typing import Any

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "js" / "tests" / "fixtures" / "wire-fixture.json"


def _modules() -> tuple[Any, Any]:
    """tx_magic.wire and tx_magic.trace, without needing the package's __init__ (or its bundle)."""
    try:
        return importlib.import_module("tx_magic.wire"), importlib.import_module("tx_magic.core.trace")
    except Exception:  # noqa: BLE001 - e.g. the renderer bundle is not built yet
        for name in [m for m in sys.modules if m == "tx_magic" or m.startswith("tx_magic.")]:
            del sys.modules[name]
        package = types.ModuleType("tx_magic")
        package.__path__ = [str(ROOT / "tx_magic")]  # type: ignore[attr-defined]
        sys.modules["tx_magic"] = package
        return importlib.import_module("tx_magic.wire"), importlib.import_module("tx_magic.core.trace")


def _attention(rng: np.random.Generator, layers: int, heads: int, mask: np.ndarray) -> np.ndarray:
    """Softmax of random logits over allowed keys, 0 where masked, as float32."""
    q, k = mask.shape
    logits = rng.normal(0.0, 2.0, size=(layers, heads, q, k))
    logits = np.where(mask, logits, -np.inf)
    logits -= logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(axis=-1, keepdims=True)
    return weights.astype(np.float32)


def _b64(value: Any) -> str:
    return base64.b64encode(bytes(value)).decode("ascii")


def build_trace() -> Any:
    """The fixture's encoder-decoder trace (padding mask on cross, causal decoder, markup in tokens)."""
    _, trace_mod = _modules()
    rng = np.random.default_rng(20240611)
    source = trace_mod.Tokens(
        text=("<s>", "Le", "<img src=x onerror=alert(1)>", " chat", "<pad>"),
        special=(True, False, False, False, True),
    )
    target = trace_mod.Tokens(text=("<s>", "The", " cat", "\n"), special=(True, False, False, False))
    n_src, n_tgt = len(source), len(target)
    padding = np.ones((n_src,), dtype=bool)
    padding[-1] = False  # the <pad> key may not be attended
    cross_mask = np.broadcast_to(padding, (n_tgt, n_src)).copy()
    causal = np.tril(np.ones((n_tgt, n_tgt), dtype=bool))
    everything = np.ones((n_src, n_src), dtype=bool)
    trace = trace_mod.Trace(
        model_name="fixture/encoder-decoder",
        sequences={"source": source, "target": target},
        attentions={
            "encoder": _attention(rng, 2, 3, everything),
            "decoder": _attention(rng, 2, 3, causal),
            "cross": _attention(rng, 2, 3, cross_mask),
        },
        masks={"decoder": causal, "cross": cross_mask},
        warnings=["fixture: <b>not bold</b> & truncated"],
    )
    return trace


def encode_trace(trace: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(meta, layers) as the widget sends them, every layer, bytes as base64 (JSON-safe)."""
    wire, _ = _modules()
    meta = _b64_meta(wire.encode_meta(trace))
    layers = [_b64_block(block) for block in wire.eager_layers(trace, budget=1 << 30)]
    return meta, layers


def _b64_block(block: dict[str, Any]) -> dict[str, Any]:
    return {key: _b64(value) if isinstance(value, bytes) else value for key, value in block.items()}


def _floats(values: Any) -> list[float]:
    return [float(x) for x in np.asarray(values, dtype=np.float32).ravel()]


def build_streamed_trace() -> Any:
    """A small streamed trace (random reductions, 2 layers x 2 heads, 9 tokens, tiles of 4)."""
    _, trace_mod = _modules()
    streamed = importlib.import_module("tx_magic.core.attention")
    rng = np.random.default_rng(7)
    layers, heads, n, tile = 2, 2, 9, 4
    r = lambda *shape: rng.random(shape).astype(np.float32)  # noqa: E731
    reduced = streamed.ReducedAttention(
        shape=(layers, heads, n, n), tile=tile, tiles=r(layers, heads, 3, 3), top_values=r(layers, heads, n, 3),
        top_index=rng.integers(0, n, (layers, heads, n, 3)).astype(np.int32),
        row_stats={name: r(layers, heads, n) for name in streamed.ROW_STATS}, lse=r(layers, heads, n),
        queries=r(layers, heads, n, 2), keys=r(layers, heads, n, 2), scaling=np.ones(layers, np.float32),
        causal=True, thumbnails=r(layers, heads, n, n))
    tokens = trace_mod.Tokens(text=tuple(f"s{i}" for i in range(n)))
    return trace_mod.Trace("fixture/streamed", {"input": tokens}, {"self": reduced},
                           masks={"self": np.tril(np.ones((n, n), dtype=bool))})


def _b64_meta(meta: dict[str, Any]) -> dict[str, Any]:
    for kind in meta["kinds"]:
        if "mask_data" in kind:
            kind["mask_data"] = _b64(kind["mask_data"])
        kind["thumbnails"] = {**kind["thumbnails"], "data": _b64(kind["thumbnails"]["data"])}
        if "stats" in kind:
            kind["stats"] = {name: _b64(data) for name, data in kind["stats"].items()}
    return meta


def build_fixture() -> dict[str, Any]:
    wire, _ = _modules()
    trace = build_trace()
    raw_meta = wire.encode_meta(trace)
    meta, layers = encode_trace(trace)
    expected = {
        f"{kind}/{layer}": [float(x) for x in trace.attention(kind)[layer].ravel()]
        for kind in trace.kinds for layer in range(trace.shape(kind)[0])
    }
    expected_masks = {kind: [int(x) for x in trace.mask(kind).ravel()] for kind in trace.kinds}
    expected_thumbnails = {kind["name"]: [int(x) for x in wire.decode_thumbnails(kind).ravel()]
                           for kind in raw_meta["kinds"]}
    v2 = [
        wire.encode_layer(trace, "encoder", 1, wire.DTYPE_UINT8),
        wire.encode_layer(trace, "cross", 0, wire.DTYPE_UINT8, pool=2),   # 4 x 5 -> 2 x 3 tiles, last partial
        wire.encode_block(trace, "cross", 1, 1, 3, 2, 5),
    ]
    topk = wire.encode_topk(trace, "decoder", 1, 3)
    index, values = wire.decode_topk(topk)
    streamed_trace = build_streamed_trace()
    streamed_meta = wire.encode_meta(streamed_trace)
    stats = wire.decode_stats(streamed_meta["kinds"][0])
    return {
        "meta": meta, "layers": layers, "expected": expected, "expected_masks": expected_masks,
        "expected_thumbnails": expected_thumbnails,
        "blocks_v2": [{"block": _b64_block(b), "expected": _floats(wire.decode_block(b))} for b in v2],
        "topk": {"block": _b64_block(topk), "expected_index": [int(i) for i in index.ravel()],
                 "expected_data": _floats(values)},
        "streamed": {"meta": _b64_meta(streamed_meta),
                     "expected_stats": {name: _floats(v) for name, v in stats.items()}},
    }


def main() -> None:
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(build_fixture(), indent=1) + "\n")
    print(f"wrote {FIXTURE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
