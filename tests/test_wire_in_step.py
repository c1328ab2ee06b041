"""The wire format is declared once in Python (tx_magic/wire.py) and once in TypeScript
(js/src/wire.ts): the declarations must agree, and the TypeScript tests decode a fixture
that the current Python encoder writes. Likewise the statistics, head types and rollout the
TypeScript tests compare with Python's come from a fixture the current Python computes."""

from __future__ import annotations

import ast
import json
import pathlib
import re

import pytest

from tx_magic import wire

ROOT = pathlib.Path(__file__).resolve().parents[1]
WIRE_TS = ROOT / "js" / "src" / "wire.ts"
FIXTURE = ROOT / "js" / "tests" / "fixtures" / "wire-fixture.json"

NAMES = ["WIRE_VERSION", "EAGER_BUDGET", "DTYPE", "DTYPE_UINT8", "DTYPE_TOPK", "MAX_BLOCK_CELLS", "THUMBNAIL_SIZE",
         "MASK_NONE", "MASK_CAUSAL", "MASK_EXPLICIT",
         "REQUEST_LAYER", "REPLY_LAYER", "REQUEST_BLOCK", "REPLY_BLOCK", "REQUEST_TOPK", "REPLY_TOPK", "REPLY_ERROR",
         "REQUEST_EXPORT", "REPLY_EXPORT", "REPLY_EXPORT_ERROR", "EXPORT_FORMATS", "EXPORT_MAX_BYTES",
         "META_KEYS", "SEQUENCE_KEYS", "KIND_KEYS", "BLOCK_KEYS", "TOPK_KEYS", "THUMBNAIL_KEYS"]


def ts_constants() -> dict[str, object]:
    """`export const NAME = <literal>` lines of wire.ts, evaluated as Python literals."""
    found = {}
    for name, value in re.findall(r"^export const (\w+)\s*=\s*(.+?)(?:\s+as const)?;\s*$", WIRE_TS.read_text(), re.M):
        if re.fullmatch(r"[\d\s*+]+", value):
            found[name] = eval(value, {"__builtins__": {}})  # noqa: S307 - digits and * only
        else:
            found[name] = ast.literal_eval(value)
    return found


@pytest.mark.parametrize("name", NAMES)
def test_typescript_declares_the_same_constant(name):
    ts = ts_constants()
    assert name in ts, f"js/src/wire.ts does not declare {name}"
    py = getattr(wire, name)
    assert (list(py) if isinstance(py, tuple) else py) == ts[name]


#: The "model internals" sections at the end of both files (hidden states, lens, logits, generation).
INTERNALS_NAMES = ["REQUEST_LOGITS", "REPLY_LOGITS", "REPLY_LOGITS_ERROR", "REQUEST_LENS", "REPLY_LENS",
                   "REPLY_LENS_ERROR", "MAX_LENS_POSITIONS", "INTERNALS_KEYS", "HIDDEN_KEYS", "LENS_KEYS",
                   "LENS_REPLY_KEYS", "LOGITS_KEYS", "GENERATION_KEYS"]


@pytest.mark.parametrize("name", INTERNALS_NAMES)
def test_typescript_declares_the_same_internals_constant(name):
    ts = ts_constants()
    assert name in ts, f"js/src/wire.ts does not declare {name}"
    py = getattr(wire, name)
    assert (list(py) if isinstance(py, tuple) else py) == ts[name]


#: The "images" sections at the end of both files (the picture a vision model saw).
IMAGE_NAMES = ["META_IMAGE", "IMAGE_KEYS"]


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_typescript_declares_the_same_image_constant(name):
    ts = ts_constants()
    assert name in ts, f"js/src/wire.ts does not declare {name}"
    py = getattr(wire, name)
    assert (list(py) if isinstance(py, tuple) else py) == ts[name]


def test_fixture_decoded_by_the_typescript_tests_is_what_python_writes_now():
    from make_wire_fixture import build_fixture

    assert FIXTURE.exists(), "run `python tests/make_wire_fixture.py` to write the wire fixture"
    assert json.loads(FIXTURE.read_text()) == json.loads(json.dumps(build_fixture())), (
        "the wire format changed: run `python tests/make_wire_fixture.py` and make the TS tests pass"
    )


def test_analysis_fixture_checked_by_the_typescript_tests_is_what_python_computes_now():
    from make_analysis_fixture import FIXTURE as ANALYSIS, build_fixture

    assert ANALYSIS.exists(), "run `python tests/make_analysis_fixture.py` to write the analysis fixture"
    assert json.loads(ANALYSIS.read_text()) == json.loads(json.dumps(build_fixture())), (
        "the statistics, head types or rollout changed: run `python tests/make_analysis_fixture.py` "
        "and make js/tests/stats.test.ts pass"
    )
