"""Write js/tests/fixtures/sampling-fixture.json: what transformers' own logits warpers
(temperature, then top-k, then top-p) leave of fixed logits, for js/tests/sampling.test.ts to
match with the browser's recomputation. Run: python tests/make_sampling_fixture.py"""

from __future__ import annotations

import pathlib

import numpy as np
import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "js" / "tests" / "fixtures" / "sampling-fixture.json"
CASES = [(1.0, 0, 1.0), (0.5, 0, 1.0), (1.7, 0, 1.0), (1.0, 5, 1.0), (1.0, 0, 0.9), (0.8, 10, 0.75),
         (1.3, 3, 0.5), (2.0, 0, 0.3)]


def build_fixture() -> dict:
    logits = np.random.default_rng(0).normal(0, 2.5, 64).astype(np.float32)
    cases = []
    for temperature, top_k, top_p in CASES:
        warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
        if top_k:
            warpers.append(TopKLogitsWarper(top_k))
        if top_p < 1:
            warpers.append(TopPLogitsWarper(top_p))
        scores = warpers(torch.zeros(1, 1, dtype=torch.long), torch.tensor(logits)[None].clone())[0]
        probs = torch.softmax(scores.double(), -1).numpy()
        kept = [int(i) for i in np.argsort(-probs, kind="stable") if probs[i] > 0]
        cases.append({"temperature": temperature, "topK": top_k, "topP": top_p, "ids": kept,
                      "probs": [round(float(probs[i]), 9) for i in kept]})
    return {"logits": [float(v) for v in logits], "cases": cases}


if __name__ == "__main__":
    from make_wire_fixture import write_fixture

    write_fixture(FIXTURE, build_fixture())
