"""Write js/tests/fixtures/wire-fixture.json: every kind of message the Python side sends, for the TS tests.

    python tests/make_wire_fixture.py

Bytes are base64 text under the keys that hold them (`tx_magic.wire.as_base64`); reply buffers are
base64 lists. The fixture holds:

- ``schema``: every TypedDict of `tx_magic.wire.schema` by name, its required and optional keys;
  ``constants``: the constants both sides declare (js/tests/wire-schema.test.ts checks both against
  js/src/wire-schema.ts);
- ``meta``, ``layers``: an encoder-decoder trace (causal decoder, explicit padding mask on cross, markup
  in tokens) as the widget sends it, every layer float32; ``expected`` ("<kind>/<layer>" -> flat
  float32), ``expected_masks`` (kind -> flat 0/1), ``expected_thumbnails`` (kind -> flat uint8);
- ``blocks``: [{"block", "expected"}] for a uint8 whole layer, uint8 and float32 pooled layers (a
  partial last tile), an exact float32 window at q0, k0 > 0; ``topk``: a top-k block and its values;
- ``streamed``: the ``_meta`` of a streamed trace (stats, head types) and its statistics;
- ``vision``: the ``_meta`` of a trace with an image, and the PNG's bytes;
- ``internals``: a causal LM trace's ``_internals`` (hidden states, lens, logits, vocab, generation) and
  its values (NaN as null);
- ``library``: a census panel, a training panel and a ``_meta`` with a user statistic, with their values;
- ``messages``: per reply kind (layer, block, topk, logits, lens, error; value norms, queries and keys,
  flow and a flow error, of a trace whose model is "run again" by a fixed stand-in) the request as the renderer
  sends it, Python's reply (`tx_magic.wire.reply_to`), its buffers and the values they decode to;
  ``export_request``: the request Python sends a view for a picture;
- ``interventions``: an intervened run's ``_meta`` (ablated heads, an edit), the ``_reruns`` trait with the
  unintervened logits, a ``_patching`` trait (exact and gradient, 2 x 3) with its expected effects, and
  the rerun requests (ablate, edit, restore) as the renderer sends them, with what they ask for.

Deterministic: same output every run, so tests/test_wire_in_step.py can check the file matches what
the encoder writes now.
"""

from __future__ import annotations

import importlib
import json
import pathlib
import struct
import sys
import types
import zlib
from typing import Any

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "js" / "tests" / "fixtures" / "wire-fixture.json"


def modules() -> tuple[Any, Any]:
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


def write_fixture(path: pathlib.Path, fixture: Any) -> None:
    """Write a fixture as the TS tests read it (and the in-step tests compare it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


def _attention(rng: np.random.Generator, layers: int, heads: int, mask: np.ndarray) -> np.ndarray:
    """Softmax of random logits over allowed keys, 0 where masked, as float32."""
    q, k = mask.shape
    logits = rng.normal(0.0, 2.0, size=(layers, heads, q, k))
    logits = np.where(mask, logits, -np.inf)
    logits -= logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(axis=-1, keepdims=True)
    return weights.astype(np.float32)


def build_trace() -> Any:
    """The fixture's encoder-decoder trace (padding mask on cross, causal decoder, markup in tokens)."""
    _, trace_mod = modules()
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
    return trace_mod.Trace(
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


def encode_trace(trace: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(meta, layers) as the widget sends them, every layer, bytes as base64 (JSON-safe)."""
    wire, _ = modules()
    return wire.as_base64(wire.encode_meta(trace)), wire.as_base64(wire.eager_layers(trace, budget=1 << 30))


def _floats(values: Any) -> list[float | None]:
    """Flat float32 values as JSON numbers, NaN as null."""
    return [None if np.isnan(x) else float(x) for x in np.asarray(values, dtype=np.float32).ravel()]


def _ints(values: Any) -> list[int]:
    return [int(x) for x in np.asarray(values).ravel()]


def build_streamed_trace() -> Any:
    """A small streamed trace (random reductions, 2 layers x 2 heads, 9 tokens, tiles of 4)."""
    _, trace_mod = modules()
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


def _png(width: int, height: int) -> bytes:
    """A small grey-ramp PNG, written byte by byte (no image library: the same bytes everywhere)."""
    rows = b"".join(b"\x00" + bytes((x * 60 + y * 20) % 256 for x in range(width)) for y in range(height))
    chunk = lambda tag, data: struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))  # noqa: E731
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def build_vision_trace() -> Any:
    """[CLS] and a 2 x 2 grid of patches over a 4 x 4 picture."""
    _, trace_mod = modules()
    image = importlib.import_module("tx_magic.core.image")
    tokens = trace_mod.Tokens(text=("[CLS]", "p0", "p1", "p2", "p3"), special=(True, False, False, False, False))
    att = _attention(np.random.default_rng(3), 1, 2, np.ones((5, 5), dtype=bool))
    return trace_mod.Trace("fixture/vision", {"input": tokens}, {"self": att},
                           image=image.PatchImage(png=_png(4, 4), width=4, height=4, rows=2, cols=2, first=1))


class _Readout:
    """A causal LM's final norm (none) and unembedding: small integer weights, so every logit is exact."""

    def __init__(self, weights: np.ndarray) -> None:
        import torch

        self.weights = torch.from_numpy(weights.astype(np.float32))

    @property
    def vocab_size(self) -> int:
        return int(self.weights.shape[0])

    def normed(self, hidden: Any) -> Any:
        return hidden.float()

    def logits(self, hidden: Any, *, normed: bool = False, ids: Any = None) -> Any:
        weights = self.weights if ids is None else self.weights[ids]
        return hidden.float() @ weights.T


VOCAB = (" the", " cat", "<b>bold</b>", " sat", "\n", " on", " mat")


def build_internals_trace() -> Any:
    """A causal LM's trace of 5 tokens (the last 2 generated) with hidden states, lens and logits."""
    _, trace_mod = modules()
    internals = importlib.import_module("tx_magic.core.internals")
    generation = importlib.import_module("tx_magic.core.generation")
    rng = np.random.default_rng(11)
    n, layers, width = 5, 2, 4
    hidden = rng.integers(-3, 4, (layers + 1, n, width)).astype(np.float32)
    readout = _Readout(rng.integers(-2, 3, (len(VOCAB), width)))
    tokens = trace_mod.Tokens(text=tuple(VOCAB[i] for i in (0, 1, 3, 5, 6)), ids=(0, 1, 3, 5, 6))
    causal = np.tril(np.ones((n, n), dtype=bool))
    return trace_mod.Trace(
        "fixture/causal-lm", {"input": tokens}, {"self": _attention(rng, layers, 2, causal)}, masks={"self": causal},
        internals=internals.Internals(hidden_states=hidden, readout=readout, vocab=VOCAB),
        generation=generation.Generation(prompt_length=3, new_ids=(5, 6)))


class _Replay:
    """Stands for a model run once more: a fixed recording that agrees with the trace's weights (the flow's
    parts add up to its attention output), so the analyses' replies are the same bytes everywhere."""

    description = "fixture model"

    def __init__(self, attention: np.ndarray) -> None:
        self.attention = attention

    def record(self, kinds: Any, *, flow: bool) -> Any:
        replay = importlib.import_module("tx_magic.core.replay")
        rng = np.random.default_rng(5)
        layers, heads, n, _ = self.attention.shape
        d, width, kv = 2, 4, 1  # grouped KV: both query heads read key/value head 0
        records = []
        for layer in range(layers):
            ints = lambda *shape: rng.integers(-2, 3, shape).astype(np.float32)  # noqa: E731
            values, projection, bias = ints(kv, n, d), ints(heads, d, width), ints(width)
            f = np.repeat(values, heads // kv, 0) @ projection  # (H, K, D)
            inputs = ints(n, width)
            whole = inputs + np.einsum("hqk,hkd->qd", self.attention[layer].astype(np.float64), f) + bias
            residual = replay.Residual(replay.PRE_NORM, inputs, whole.astype(np.float32), whole.astype(np.float32),
                                       (whole + ints(n, width)).astype(np.float32))
            records.append(replay.LayerRecord(
                queries=ints(heads, n, d), keys=ints(kv, n, d), values=values, scaling=0.5,
                last_row=self.attention[layer, :, -1], value_norms=np.linalg.norm(f, axis=-1).astype(np.float32),
                projection=projection if flow else None, bias=bias if flow else None,
                unrotated=(ints(heads, n, d), ints(kv, n, d)), residual=residual if flow else None))
        return replay.Recording(layers={"self": records}, flow=flow)


def build_replay_trace() -> Any:
    """A causal trace of 5 tokens, 2 layers x 2 heads, whose model can be "run again" (`_Replay`)."""
    _, trace_mod = modules()
    causal = np.tril(np.ones((5, 5), dtype=bool))
    att = _attention(np.random.default_rng(13), 2, 2, causal)
    tokens = trace_mod.Tokens(text=("<s>", " the", " cat", " sat", " down"), special=(True, False, False, False, False))
    return trace_mod.Trace("fixture/replay", {"input": tokens}, {"self": att}, masks={"self": causal},
                           replay=_Replay(att))


def _internals(trace: Any) -> dict[str, Any]:
    wire, _ = modules()
    return {"raw": wire.as_base64(wire.encode_internals(trace)),
            "expected": {"norms": _floats(trace.hidden.norms), "cosines": _floats(trace.hidden.cosines),
                         "logits": _floats(trace.logits.last)}}


def _message(wire: Any, trace: Any, number: int, type_: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A request as the renderer sends it, Python's reply to it and what its buffers decode to."""
    request = {"type": type_, "id": f"txm-{number}", "payload": payload}
    reply, buffers = wire.reply_to(trace, request)
    expected: dict[str, Any] = {}
    if reply["type"] == wire.REPLY and type_ in (wire.REQUEST_LAYER, wire.REQUEST_BLOCK):
        expected["values"] = _floats(wire.decode_block(reply["content"], buffers))
    elif reply["type"] == wire.REPLY and type_ == wire.REQUEST_TOPK:
        index, values = wire.decode_topk(reply["content"], buffers)
        expected["index"], expected["values"] = _ints(index), _floats(values)
    elif reply["type"] == wire.REPLY and type_ in (wire.REQUEST_VALUE_NORMS, wire.REQUEST_QUERIES_KEYS):
        dtypes = ("<f4", "<f4", "u1") if type_ == wire.REQUEST_VALUE_NORMS else ("<f4",) * len(buffers)
        expected["arrays"] = [_floats(np.frombuffer(b, t)) for b, t in zip(buffers, dtypes, strict=True)]
        analysis = importlib.import_module("tx_magic.analysis")
        if type_ == wire.REQUEST_VALUE_NORMS:  # what the renderer's weighting must give, from Python's definition
            expected["attention"] = _floats(trace.attention())
            expected["weighted"] = _floats(analysis.weighted_rows(trace.attention(), trace.value_norms(per_key=True)))
        else:
            pair = trace.queries_keys(payload["kind"], payload["layer"])
            expected["scores"] = _floats(pair.scores()[:, payload["query"]])
            expected["unrotated_scores"] = _floats(pair.scores(rotated=False)[:, payload["query"]])
    elif reply["type"] == wire.REPLY and type_ == wire.REQUEST_FLOW:
        pass  # the edges are the reply's content
    elif reply["type"] == wire.REPLY and type_ == wire.REQUEST_LOGITS:
        expected["values"] = _floats(np.frombuffer(buffers[0], "<f4"))
    elif reply["type"] == wire.REPLY:
        expected["ids"] = _ints(np.frombuffer(buffers[0], "<i4"))
        expected["values"] = _floats(np.frombuffer(buffers[1], "<f4"))
    return {"request": request, "reply": reply, "buffers": wire.as_base64(buffers), "expected": expected}


def _messages(wire: Any) -> dict[str, Any]:
    trace = build_internals_trace()
    asks = {
        "layer": (wire.REQUEST_LAYER, {"kind": "self", "layer": 1, "dtype": wire.DTYPE_UINT8, "pool": 2}),
        "block": (wire.REQUEST_BLOCK, {"kind": "self", "layer": 1, "q0": 1, "q1": 4, "k0": 0, "k1": 3}),
        "topk": (wire.REQUEST_TOPK, {"kind": "self", "layer": 0}),
        "logits": (wire.REQUEST_LOGITS, {"position": 2}),
        "lens": (wire.REQUEST_LENS, {"positions": [3, 0]}),
        "error": (wire.REQUEST_LAYER, {"kind": "self", "layer": 9}),
    }
    out = {name: _message(wire, trace, i + 1, *ask) for i, (name, ask) in enumerate(asks.items())}
    replayed = build_replay_trace()
    more = {
        "value_norms": (wire.REQUEST_VALUE_NORMS, {"kind": "self"}),
        "queries_keys": (wire.REQUEST_QUERIES_KEYS, {"kind": "self", "layer": 1, "query": 3}),
        "flow": (wire.REQUEST_FLOW, {"kind": "self", "token": 4, "threshold": 0.04}),
        "flow_error": (wire.REQUEST_FLOW, {"kind": "self", "token": 4, "threshold": 2}),
    }
    out.update({name: _message(wire, replayed, len(out) + i + 1, *ask) for i, (name, ask) in enumerate(more.items())})
    return out


def _schema(wire: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(every TypedDict's keys, the constants both sides declare), read from tx_magic.wire.schema."""
    schema = importlib.import_module("tx_magic.wire.schema")
    fields = {name: {"required": sorted(cls.__required_keys__), "optional": sorted(cls.__optional_keys__)}
              for name, cls in wire.SCHEMA.items()}
    constants = {name: list(value) if isinstance(value, tuple) else value for name, value in vars(schema).items()
                 if name.isupper() and isinstance(value, (int, str, tuple)) and not name.endswith("_KEYS")
                 and name not in wire.PYTHON_ONLY}
    return fields, constants


def build_intervened_trace() -> Any:
    """`build_internals_trace` as if L1H0 and L0H1 had been mean-ablated and weight (3, 1) of L1H1 set to 0.25."""
    trace = build_internals_trace()
    intervention = importlib.import_module("tx_magic.core.intervention")
    trace.intervention = intervention.intervention_of([(1, 0), (0, 1)], "mean", [(1, 1, 3, 1, 0.25)])
    return trace


def build_patchings() -> list[Any]:
    """Exact and gradient patching of 2 layers x 3 heads, deterministic values."""
    patching = importlib.import_module("tx_magic.analysis.patching")
    raw = np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]])
    made = []
    for method, values, seconds in (("exact", raw, 1.5), ("gradient", raw * 0.9 + 0.1, 0.25)):
        made.append(patching.Patching(raw=values, effects=(values + 1.0) / 3.0, metric_clean=2.0, metric_corrupt=-1.0,
                                      by="head", method=method, kind="self", tokens=("a", "b"),
                                      corrupted_tokens=("a", "<c>"), metric="logit(' a') - logit(' b')",
                                      model_name="fixture", seconds=seconds))
    return made


def _interventions(wire: Any) -> dict[str, Any]:
    trace = build_intervened_trace()
    patchings = build_patchings()
    requests = {
        "ablate": (wire.REQUEST_ABLATE, {"heads": [{"kind": "self", "layer": 1, "head": 2}], "ablation": "zero"}),
        "edit": (wire.REQUEST_EDIT, {"edits": [{"kind": "self", "layer": 0, "head": 0, "query": 2, "key": 0,
                                                "weight": 0.0}]}),
        "restore": (wire.REQUEST_RESTORE, {}),
    }
    current = trace.intervention
    asked = {"ablate": wire.read_ablate(requests["ablate"][1], current),
             "edit": wire.read_edit(requests["edit"][1], current), "restore": None}
    return {
        "meta": wire.as_base64(wire.encode_meta(trace)),
        "reruns": wire.as_base64(wire.encode_reruns("mean", build_internals_trace())),
        "expected_baseline": _floats(build_internals_trace().logits.last),
        "patching": wire.as_base64(wire.encode_patching(patchings)),
        "expected_patching": {p.method: {"effects": _floats(p.effects), "raw": _floats(p.raw)} for p in patchings},
        "requests": {name: {"type": t, "id": f"rerun-{i}", "payload": payload, "asks": a.label() if a else ""}
                     for i, ((name, (t, payload)), a) in enumerate(zip(requests.items(), asked.values(), strict=True))},
    }


def _library(wire: Any, trace: Any) -> dict[str, Any]:
    """The pattern library's panels and a user statistic, with the values the TS tests must decode."""
    analysis = importlib.import_module("tx_magic.analysis")
    probes = importlib.import_module("tx_magic.analysis.probes")
    rng = np.random.default_rng(7)
    patterns = analysis.library(cross=False)
    values = rng.random((3, len(patterns), 2, 2))
    values[1, 0] = np.nan  # a pattern that does not apply to one input
    inputs = [probes.ProbeInput("natural", text="a <b>text</b>"), probes.ProbeInput("repeated", ids=(5, 6, 5, 6)),
              probes.ProbeInput("text", text="third")]
    tokens = [trace.tokens("encoder")[0]] * 3
    census = analysis.Census(model_name="fixture", kind="encoder", inputs=inputs, tokens=tokens, patterns=patterns,
                             values=values)
    panel = wire.encode_census(census, 1, texts=[0, -1, 1])
    recorder = analysis.Recorder(None, None, "")
    recorder.steps, recorder.traces = [0, 10], [trace, build_trace()]
    analysis.register_statistic("diagonal_share", lambda att, tokens: float(np.trace(att)) / att.shape[0])
    try:
        meta = wire.encode_meta(trace)
        user = analysis.user_stats(trace, "encoder")["diagonal_share"]
    finally:
        analysis.unregister_statistic("diagonal_share")
    return {
        "census": wire.as_base64(panel),
        "expected_means": _floats(np.stack([census.mean(p) for p in census.patterns])),
        "expected_labels": [[str(x) for x in row] for row in census.labels],
        "training": wire.as_base64(wire.encode_training(recorder)),
        "expected_fluctuation": _floats(recorder.fluctuation("encoder")),
        "meta": wire.as_base64(meta),
        "expected_user_stats": _floats(user),
    }


def build_fixture() -> dict[str, Any]:
    wire, _ = modules()
    trace = build_trace()
    meta, layers = encode_trace(trace)
    fields, constants = _schema(wire)
    blocks = [
        wire.encode_layer(trace, "encoder", 1, wire.DTYPE_UINT8),
        wire.encode_layer(trace, "cross", 0, wire.DTYPE_UINT8, pool=2),  # 4 x 5 -> 2 x 3 tiles, last partial
        wire.encode_layer(trace, "encoder", 0, wire.DTYPE, pool=2),
        wire.encode_block(trace, "cross", 1, 1, 3, 2, 5),
    ]
    topk = wire.encode_topk(trace, "decoder", 1, 3)
    index, values = wire.decode_topk(topk)
    streamed_meta = wire.encode_meta(build_streamed_trace())
    stats = wire.decode_stats(streamed_meta["kinds"][0])
    vision = build_vision_trace()
    return {
        "schema": fields, "constants": constants,
        "meta": meta, "layers": layers,
        "expected": {f"{kind}/{layer}": _floats(trace.layer(kind, layer))
                     for kind in trace.kinds for layer in range(trace.shape(kind)[0])},
        "expected_masks": {kind: _ints(trace.mask(kind)) for kind in trace.kinds},
        "expected_thumbnails": {kind["name"]: _ints(wire.decode_thumbnails(kind))
                                for kind in wire.encode_meta(trace)["kinds"]},
        "blocks": [{"block": wire.as_base64(b), "expected": _floats(wire.decode_block(b))} for b in blocks],
        "topk": {"block": wire.as_base64(topk), "expected_index": _ints(index), "expected_data": _floats(values)},
        "streamed": {"meta": wire.as_base64(streamed_meta),
                     "expected_stats": {name: _floats(v) for name, v in stats.items()}},
        "vision": {"meta": wire.as_base64(wire.encode_meta(vision)),
                   "expected_png": _ints(np.frombuffer(vision.image.png, np.uint8))},
        "internals": _internals(build_internals_trace()),
        "messages": _messages(wire),
        "export_request": wire.request(wire.REQUEST_EXPORT, {"format": "png", "scale": 2}, request_id="export-1"),
        "interventions": _interventions(wire),
        "library": _library(wire, trace),
    }


if __name__ == "__main__":
    write_fixture(FIXTURE, build_fixture())
