"""Every notebook in examples/ runs top to bottom without an error (executed headless by nbclient)."""

from __future__ import annotations

import json
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parents[1] / "examples").glob("*.ipynb"))

#: Code the tests append to a notebook: it reads the notebook's own variables after it ran.
PROBES = {
    "copy_task.ipynb": '''
import json, random
rng = random.Random(1)
found, expected = [], []
for _ in range(20):
    digits = " ".join(str(rng.randrange(10)) for _ in range(LENGTH))
    t = tx_magic.capture(model, tokenizer, digits, target=digits)
    found += t.attention("cross")[-1].mean(axis=0).argmax(axis=-1).tolist()
    expected += list(range(LENGTH))
shown = w.trace.attention("cross")[-1].mean(axis=0).argmax(axis=-1).tolist()
print("TXM-PROBE " + json.dumps({"found": found, "expected": expected, "shown": shown,
                                 "kinds": list(w.trace.kinds), "steps": rec.steps, "diagonal": diagonal,
                                 "monotonic": [float(m) for m in monotonic],
                                 "fluctuation": [None if f != f else float(f) for f in fluctuation],
                                 "training": r._training["steps"]}))
''',
    "clark_bert.ipynb": '''
import json
print("TXM-PROBE " + json.dumps({"layers": per_layer.to_dict(orient="list"), "ratio": ratio.tolist(),
                                 "uniform": float(uniform["special+punct"]), "parked": len(parked)}))
''',
    "induction_heads.ipynb": '''
import json
print("TXM-PROBE " + json.dumps({"induction": induction, "accuracy": accuracy.tolist(),
                                 "shown": w.census_input, "labels": list(census.table()["label"])}))
''',
    "user_view.ipynb": '''
import json
print("TXM-PROBE " + json.dumps({"views": [v["name"] for v in w._views],
                                 "stats": list(w._meta["kinds"][0].get("user_stats", {})),
                                 "importmap": "<script type=\\"importmap\\">" in path.read_text()}))
''',
    "value_weighted.ipynb": '''
import json
print("TXM-PROBE " + json.dumps({"raw": raw_share.tolist(), "value": value_share.tolist(), "weighting": w.weighting,
                                 "flow_edges": len(routes), "flow_top": sorted(set(routes[routes.layer == 5].target))}))
''',
}
PROBES["ioi.ipynb"] = '''
import json
print("TXM-PROBE " + json.dumps({
    "correlation": exact.correlation(gradient), "top": exact.top(3), "results": results,
    "positive_to_s2": float(att[positive[0][0], positive[0][1], -1, s2]),
    "negative_to_io": float(att[negative[0][0], negative[0][1], -1, io]),
    "widget": w.intervention.label(),
}))
'''
_EXECUTED: dict[pathlib.Path, nbformat.NotebookNode] = {}


def executed(path: pathlib.Path, folder: pathlib.Path) -> nbformat.NotebookNode:
    """The notebook after running it (once per test session), with its probe cell if it has one."""
    if path not in _EXECUTED:
        nb = nbformat.read(path, as_version=4)
        if path.name in PROBES:
            nb.cells.append(nbformat.v4.new_code_cell(PROBES[path.name]))
        NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(folder)}},
                       store_widget_state=True).execute()
        _EXECUTED[path] = nb
    return _EXECUTED[path]


def outputs_of(nb: nbformat.NotebookNode) -> list:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_notebook_runs_and_shows_widgets(path, tmp_path):
    nb = executed(path, tmp_path)
    outputs = outputs_of(nb)
    assert not [o for o in outputs if o.output_type == "error"]
    views = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert views, f"{path.name} displayed no widget"
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert any(m["model_name"] == "AnyModel" for m in state.values())


def test_there_are_examples():
    names = {p.name for p in EXAMPLES}
    assert {"quickstart.ipynb", "copy_task.ipynb", "custom_module.ipynb", "value_weighted.ipynb", "clark_bert.ipynb",
            "induction_heads.ipynb", "user_view.ipynb", "ioi.ipynb"} <= names


def probe_of(name: str, folder: pathlib.Path) -> dict:
    """What the probe cell appended to example `name` printed."""
    nb = executed(next(p for p in EXAMPLES if p.name == name), folder)
    probe = [o for o in outputs_of(nb) if o.output_type == "stream" and "TXM-PROBE " in o.text]
    assert probe, f"the probe cell of {name} printed nothing"
    return json.loads(probe[-1].text.split("TXM-PROBE ", 1)[1])


def test_ioi_heads_that_carry_the_answer_and_what_ablating_them_does(tmp_path):
    """On SmolLM2-135M (real weights): exact and gradient patching rank the heads alike; the head of largest
    positive effect attends from the last token to the repeated name (S2), the most negative one to the
    indirect object; ablating the three most positive heads cuts logit(' Mary') - logit(' John') below half,
    ablating the three most negative raises it, three random heads move it by under a quarter."""
    result = probe_of("ioi.ipynb", tmp_path)
    assert result["correlation"] > 0.8
    assert result["top"][0][1] > 0.3
    assert result["positive_to_s2"] > 0.5 and result["negative_to_io"] > 0.5
    r = result["results"]
    assert r["before"] > 3
    for mode in ("zero", "mean"):
        assert r[f"positive/{mode}"] < 0.5 * r["before"]
        assert r[f"negative/{mode}"] > r["before"]
        assert abs(r[f"random/{mode}"] - r["before"]) < 0.25 * r["before"]
    assert result["widget"].startswith("ablated: L")


def test_copy_task_trains_a_diagonal_cross_attention(tmp_path):
    """The notebook's encoder-decoder, trained in the notebook, copies: the argmax of each cross-attention
    row (last layer, mean of heads) is the source position it copies, for >= 90% of rows of 20 new sequences."""
    path = next(p for p in EXAMPLES if p.name == "copy_task.ipynb")
    nb = executed(path, tmp_path)
    probe = [o for o in outputs_of(nb) if o.output_type == "stream" and "TXM-PROBE " in o.text]
    assert probe, "the probe cell printed nothing"
    result = json.loads(probe[-1].text.split("TXM-PROBE ", 1)[1])
    assert result["kinds"] == ["encoder", "decoder", "cross"]
    found, expected = result["found"], result["expected"]
    assert len(found) == len(expected) == 200
    hits = sum(f == e for f, e in zip(found, expected, strict=True))
    assert hits / len(expected) >= 0.9, f"only {hits} of {len(expected)} cross-attention rows on the diagonal"
    shown = result["shown"]  # the widget the notebook displays shows the diagonal too
    assert sum(s == i for i, s in enumerate(shown)) >= 0.9 * len(shown)


def test_value_weighted_example_reproduces_kobayashi_on_minilm(tmp_path):
    """Kobayashi et al. (2020): much of BERT's attention goes to [CLS]/[SEP], whose value vectors are short, so
    the value-weighted share drops sharply. On MiniLM, 5 texts: lower in every layer, and at most half overall
    (measured: 0.503 raw, 0.142 value-weighted); the notebook's flow graph ends in [CLS] alone."""
    result = probe_of("value_weighted.ipynb", tmp_path)
    raw, value = result["raw"], result["value"]
    assert len(raw) == len(value) == 6
    assert all(v < r for v, r in zip(value, raw, strict=True)), (raw, value)
    assert sum(value) <= 0.5 * sum(raw), (raw, value)
    assert max(raw[1:5]) > 0.4  # the middle layers do put much of their weight there
    assert result["weighting"] == "value" and result["flow_edges"] > 0 and result["flow_top"] == [0]


def test_generation_example_is_executed():
    """A causal LM with generation (SmolLM2): examples/generation.ipynb runs in the test above."""
    assert any(p.name == "generation.ipynb" for p in EXAMPLES)


def test_copy_task_recorder_shows_the_diagonal_forming(tmp_path):
    """The Recorder's snapshots: the diagonal score rises from chance (~1/10) to most of the weight, the
    best head's monotonic alignment follows, and the fluctuation peaks early and falls as it settles."""
    result = probe_of("copy_task.ipynb", tmp_path)
    assert result["steps"] == [*range(0, 400, 25), 400] == result["training"]
    diagonal, monotonic, fluctuation = result["diagonal"], result["monotonic"], result["fluctuation"]
    assert diagonal[0] < 0.2 and diagonal[-1] > 0.7, diagonal
    assert monotonic[0] < 0.2 and monotonic[-1] > 0.7, monotonic
    assert fluctuation[0] is None
    peak = max(range(1, len(fluctuation)), key=lambda i: fluctuation[i])
    assert result["steps"][peak] <= 150 and max(fluctuation[-4:]) < 0.1, fluctuation


def test_clark_bert_finds_attention_parked_on_special_tokens_and_punctuation(tmp_path):
    """Clark et al. 2019 on MiniLM: in layers 1-4 more than half the attention goes to [CLS], [SEP] and
    punctuation, over 2.5 times their share of the keys; MiniLM parks it on [CLS] (BERT-base: on [SEP])."""
    result = probe_of("clark_bert.ipynb", tmp_path)
    layers = result["layers"]
    for layer in range(1, 5):
        assert layers["special+punct"][layer] > 0.5, layers
        assert result["ratio"][layer] > 2.5, result["ratio"]
        assert layers["cls"][layer] > max(layers["sep"][layer], layers["punct"][layer])
    assert result["uniform"] < 0.25 and result["parked"] >= 1


def test_induction_heads_are_found_by_the_census_and_copy(tmp_path):
    """Olsson et al. 2022 on SmolLM2: the census labels induction heads in the middle-to-late layers
    (17-18 first of all), and the model copies the second half of repeated random tokens."""
    result = probe_of("induction_heads.ipynb", tmp_path)
    heads = [tuple(h) for h in result["induction"]]
    assert len(heads) >= 3 and {17, 18} <= {layer for layer, _ in heads}, heads
    assert all(12 <= layer <= 26 for layer, _ in heads)
    assert result["labels"].count("induction") == len(heads)
    accuracy = result["accuracy"]
    assert max(first for first, _ in accuracy) <= 0.1 and sum(second for _, second in accuracy) / len(accuracy) >= 0.4


def test_user_view_example_registers_a_view_and_a_statistic(tmp_path):
    result = probe_of("user_view.ipynb", tmp_path)
    assert "Row entropy" in result["views"] and result["stats"] == ["last"] and result["importmap"]
