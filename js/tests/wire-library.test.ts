/**
 * The pattern library's wire, as Python writes it (tests/make_wire_fixture.py): the census and training
 * panels and a kind's user statistics decode to the values Python computed, and hold only declared keys.
 */
import { describe, expect, it } from "vitest";
import fixture from "./fixtures/wire-fixture.json";
import { decodeCensus } from "../src/views/census";
import { decodeTraining } from "../src/views/training";
import {
  CENSUS_PANEL_FIELDS, decodeMeta, TRAINING_KIND_FIELDS, TRAINING_PANEL_FIELDS, type WireCensusPanel, type WireTrainingPanel,
} from "../src/wire";

const lib = fixture.library;
const close = (actual: ArrayLike<number>, expected: (number | null)[]) => {
  expect(actual.length).toBe(expected.length);
  expected.forEach((e, i) => {
    if (e === null) expect(Number.isNaN(actual[i])).toBe(true);
    else expect(actual[i]).toBeCloseTo(e, 6);
  });
};
const declared = (value: object, fields: Record<string, string>) =>
  expect(Object.keys(value).filter((k) => !(k in fields))).toEqual([]);

describe("the pattern library's wire", () => {
  it("decodes the census panel Python wrote", () => {
    declared(lib.census, CENSUS_PANEL_FIELDS);
    const c = decodeCensus(lib.census as unknown as WireCensusPanel);
    close(c.means, lib.expected_means);
    expect(c.labels).toEqual(lib.expected_labels);
    expect(c.texts).toEqual([0, -1, 1]);
    expect(c.current).toBe(1);
    expect(c.inputs[0]).toBe("natural: a <b>text</b>");
  });

  it("decodes the training panel Python wrote", () => {
    declared(lib.training, TRAINING_PANEL_FIELDS);
    for (const k of lib.training.kinds) declared(k, TRAINING_KIND_FIELDS);
    const t = decodeTraining(lib.training as unknown as WireTrainingPanel);
    expect(t.steps).toEqual([0, 10]);
    close(t.kinds.find((k) => k.name === "encoder")!.fluctuation, lib.expected_fluctuation);
  });

  it("decodes a kind's user statistics", () => {
    const meta = decodeMeta(lib.meta);
    const encoder = meta.kinds.find((k) => k.name === "encoder")!;
    close(encoder.user_stats!.diagonal_share, lib.expected_user_stats);
  });
});
