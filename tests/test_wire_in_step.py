"""The wire is declared once per language: TypedDicts in tx_magic/wire/schema.py, interfaces in
js/src/wire-schema.ts. The fixture tests/make_wire_fixture.py writes (every message kind, and the
schema's names and keys as Python declares them) must be current; js/tests/wire-schema.test.ts
checks the TypeScript declarations against it and the other TS tests decode its messages. Here: the
encoders write exactly what the TypedDicts declare. Likewise the statistics, head types and rollout
the TS tests compare with Python's come from a fixture the current Python computes."""

from __future__ import annotations

import json
import pathlib
import typing
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from make_analysis_fixture import FIXTURE as ANALYSIS
from make_analysis_fixture import build_fixture as build_analysis
from make_wire_fixture import (
    FIXTURE,
    build_fixture,
    build_internals_trace,
    build_streamed_trace,
    build_trace,
    build_vision_trace,
)

from tx_magic import wire


@pytest.mark.parametrize(("path", "build", "how"), [
    (FIXTURE, build_fixture, "run `python tests/make_wire_fixture.py` and make the TS tests pass"),
    (ANALYSIS, build_analysis, "run `python tests/make_analysis_fixture.py` and make js/tests/stats.test.ts pass"),
], ids=["wire", "analysis"])
def test_fixture_read_by_the_typescript_tests_is_what_python_writes_now(path: pathlib.Path, build: Callable[[], Any],
                                                                        how: str):
    assert path.exists(), f"{path.name} is missing: {how}"
    assert json.loads(path.read_text()) == json.loads(json.dumps(build())), f"{path.name} is out of date: {how}"


def conforms(value: Any, declared: Any, where: str) -> None:
    """Fail unless `value` is what the annotation `declared` says, TypedDicts checked key by key."""
    origin, args = typing.get_origin(declared), typing.get_args(declared)
    if typing.is_typeddict(declared):
        assert isinstance(value, Mapping), f"{where}: not an object"
        hints, name = typing.get_type_hints(declared), declared.__name__
        assert set(value) <= set(hints), f"{where}: {sorted(set(value) - set(hints))} not declared by {name}"
        missing = declared.__required_keys__ - set(value)
        assert not missing, f"{where}: {name} needs {sorted(missing)}"
        for key, item in value.items():
            conforms(item, hints[key], f"{where}.{key}")
    elif origin is list:
        assert isinstance(value, list), f"{where}: not a list"
        for i, item in enumerate(value):
            conforms(item, args[0], f"{where}[{i}]")
    elif origin is dict:
        assert isinstance(value, dict), f"{where}: not a dict"
        for key, item in value.items():
            conforms(item, args[1], f"{where}[{key!r}]")
    elif origin is typing.Literal:
        assert value in args, f"{where}: {value!r} is not one of {args}"
    elif declared is float:
        assert isinstance(value, (int, float)), f"{where}: {value!r} is not a number"
    elif origin is None and isinstance(declared, type) and declared is not object:
        assert isinstance(value, declared) and not (declared is int and isinstance(value, bool)), \
            f"{where}: {value!r} is not {declared.__name__}"


@pytest.mark.parametrize("build", [build_trace, build_streamed_trace, build_vision_trace, build_internals_trace])
def test_the_traits_are_what_the_typeddicts_declare(build):
    trace = build()
    conforms(wire.encode_meta(trace), wire.Meta, "_meta")
    conforms(wire.encode_internals(trace), wire.Internals, "_internals")
    for i, block in enumerate(wire.eager_layers(trace, budget=1 << 30) + wire.eager_layers(trace, budget=0)):
        conforms(block, wire.TopKBlock if block["dtype"] == wire.DTYPE_TOPK else wire.ValueBlock, f"_layers[{i}]")


def test_every_request_and_reply_is_what_the_typeddicts_declare():
    fixture = build_fixture()
    contents = {wire.REQUEST_LAYER: wire.BlockHeader, wire.REQUEST_BLOCK: wire.BlockHeader,
                wire.REQUEST_TOPK: wire.TopKHeader, wire.REQUEST_LOGITS: wire.LogitsHeader,
                wire.REQUEST_LENS: wire.LensReply, wire.REQUEST_VALUE_NORMS: wire.ValueNormsReply,
                wire.REQUEST_QUERIES_KEYS: wire.QueriesKeysReply, wire.REQUEST_FLOW: wire.FlowReply}
    payloads = {wire.REQUEST_LAYER: wire.LayerRequest, wire.REQUEST_BLOCK: wire.BlockRequest,
                wire.REQUEST_TOPK: wire.TopKRequest, wire.REQUEST_LOGITS: wire.LogitsRequest,
                wire.REQUEST_LENS: wire.LensRequest, wire.REQUEST_VALUE_NORMS: wire.ValueNormsRequest,
                wire.REQUEST_QUERIES_KEYS: wire.QueriesKeysRequest, wire.REQUEST_FLOW: wire.FlowRequest}
    assert set(contents) == set(payloads) == set(wire.HANDLERS)  # one payload and one content per request type
    for name, message in fixture["messages"].items():
        request, reply = message["request"], message["reply"]
        conforms(request, wire.Request, f"{name} request")
        conforms(request["payload"], payloads[request["type"]], f"{name} payload")
        if reply["type"] == wire.REPLY_ERROR:
            conforms(reply, wire.ErrorReply, f"{name} reply")
        else:
            conforms(reply, wire.Reply, f"{name} reply")
            conforms(reply["content"], contents[request["type"]], f"{name} content")
    assert {m["reply"]["type"] for m in fixture["messages"].values()} == {wire.REPLY, wire.REPLY_ERROR}
    conforms(fixture["export_request"], wire.Request, "export request")
    conforms(fixture["export_request"]["payload"], wire.ExportRequest, "export payload")


def test_the_fixture_lists_every_typeddict_of_the_schema():
    declared = {name for name, value in vars(wire.schema).items() if typing.is_typeddict(value)}
    assert set(wire.SCHEMA) == declared
    assert set(build_fixture()["schema"]) == declared
