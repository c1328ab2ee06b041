"""Write js/tests/fixtures/wire-fixture.json: what the Python encoder sends, for the TS tests.

    python tests/make_wire_fixture.py

The fixture holds an encoder-decoder trace encoded by `tx_magic.wire` (``meta``: the ``_meta``
trait, ``layers``: every layer block, bytes as base64 under the same keys) and the values the
renderer must decode (``expected``: ``"<kind>/<layer>"`` -> the flat float32 list,
``expected_masks``: kind -> flat 0/1 list, 1 = allowed). Deterministic: same output every run,
so tests/test_wire_in_step.py can check the file matches what the encoder writes now.
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
        return importlib.import_module("tx_magic.wire"), importlib.import_module("tx_magic.trace")
    except Exception:  # noqa: BLE001 - e.g. the renderer bundle is not built yet
        for name in [m for m in sys.modules if m == "tx_magic" or m.startswith("tx_magic.")]:
            del sys.modules[name]
        package = types.ModuleType("tx_magic")
        package.__path__ = [str(ROOT / "tx_magic")]  # type: ignore[attr-defined]
        sys.modules["tx_magic"] = package
        return importlib.import_module("tx_magic.wire"), importlib.import_module("tx_magic.trace")


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
    meta = wire.encode_meta(trace)
    for kind in meta["kinds"]:
        if "mask_data" in kind:
            kind["mask_data"] = _b64(kind["mask_data"])
    layers = [{**block, "data": _b64(block["data"])} for block in wire.eager_layers(trace, budget=1 << 30)]
    return meta, layers


def build_fixture() -> dict[str, Any]:
    trace = build_trace()
    meta, layers = encode_trace(trace)
    expected = {
        f"{kind}/{layer}": [float(x) for x in trace.attention(kind)[layer].ravel()]
        for kind in trace.kinds for layer in range(trace.shape(kind)[0])
    }
    expected_masks = {kind: [int(x) for x in trace.mask(kind).ravel()] for kind in trace.kinds}
    return {"meta": meta, "layers": layers, "expected": expected, "expected_masks": expected_masks}


def main() -> None:
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(build_fixture(), indent=1) + "\n")
    print(f"wrote {FIXTURE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
