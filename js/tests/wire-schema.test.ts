/**
 * The wire declared once per language agrees: every TypedDict of tx_magic/wire/schema.py has an
 * interface here (its record in SCHEMA) with the same required and optional keys, the constants
 * are the same, and what Python writes (the wire fixture) holds only declared keys.
 */
import { describe, expect, it } from "vitest";
import fixture from "./fixtures/wire-fixture.json";
import * as wire from "../src/wire";
import {
  BLOCK_HEADER_FIELDS, ERROR_REPLY_FIELDS, EXPORT_REQUEST_FIELDS, GENERATION_FIELDS, HIDDEN_FIELDS, IMAGE_FIELDS,
  INTERNALS_FIELDS, KIND_FIELDS, LENS_INFO_FIELDS, LOGITS_FIELDS, META_FIELDS, REPLY_FIELDS, REQUEST_FIELDS, SCHEMA,
  SEQUENCE_FIELDS, THUMBNAIL_FIELDS, TOPK_BLOCK_FIELDS, VALUE_BLOCK_FIELDS,
} from "../src/wire";

type Declared = Record<string, { required: string[]; optional: string[] }>;

/** Fail unless `value` has every required key of `fields` and no key `fields` lacks. */
function conforms(value: unknown, fields: Record<string, string>, where: string): Record<string, unknown> {
  expect(typeof value === "object" && value !== null, `${where} is an object`).toBe(true);
  const keys = Object.keys(value as object);
  expect(keys.filter((k) => !(k in fields)), `${where}: keys not declared`).toEqual([]);
  expect(Object.keys(fields).filter((k) => fields[k] === "required" && !keys.includes(k)), `${where}: missing`).toEqual([]);
  return value as Record<string, unknown>;
}

describe("the wire schema", () => {
  const declared = fixture.schema as Declared;

  it("declares every object Python declares, with the same required and optional keys", () => {
    expect(Object.keys(SCHEMA).sort()).toEqual(Object.keys(declared).sort());
    for (const [name, python] of Object.entries(declared)) {
      const fields = SCHEMA[name];
      const marked = (mark: string) => Object.keys(fields).filter((k) => fields[k] === mark).sort();
      expect({ name, required: marked("required"), optional: marked("optional") }).toEqual({ name, ...python });
    }
  });

  it("declares the constants Python declares, with the same values", () => {
    const isConstant = (name: string, value: unknown) => /^[A-Z][A-Z0-9_]*$/.test(name) && !name.endsWith("_KEYS") &&
      (typeof value === "number" || typeof value === "string" || (Array.isArray(value) && value.every((v) => typeof v === "string")));
    const ours = Object.fromEntries(Object.entries(wire).filter(([name, value]) => isConstant(name, value)));
    expect(ours).toEqual(fixture.constants);
    expect(wire.IMAGE_KEYS).toEqual(Object.keys(IMAGE_FIELDS));
  });

  it("covers what Python writes: traits, blocks, internals, requests and replies", () => {
    const meta = conforms(fixture.meta, META_FIELDS, "meta");
    for (const seq of Object.values(meta.sequences as object)) conforms(seq, SEQUENCE_FIELDS, "sequence");
    const metas = [fixture.meta, fixture.streamed.meta, fixture.vision.meta];
    for (const m of metas) {
      for (const kind of m.kinds) conforms(conforms(kind, KIND_FIELDS, "kind").thumbnails, THUMBNAIL_FIELDS, "thumbnails");
    }
    conforms(fixture.vision.meta.image, IMAGE_FIELDS, "image");
    for (const block of [...fixture.layers, ...fixture.blocks.map((b) => b.block)]) conforms(block, VALUE_BLOCK_FIELDS, "block");
    conforms(fixture.topk.block, TOPK_BLOCK_FIELDS, "top-k block");
    const internals = conforms(fixture.internals.raw, INTERNALS_FIELDS, "internals");
    conforms(internals.hidden, HIDDEN_FIELDS, "hidden");
    conforms(internals.lens, LENS_INFO_FIELDS, "lens");
    conforms(internals.logits, LOGITS_FIELDS, "logits");
    conforms(internals.generation, GENERATION_FIELDS, "generation");
    for (const [name, m] of Object.entries(fixture.messages)) {
      conforms(m.request, REQUEST_FIELDS, `${name} request`);
      conforms(m.reply, m.reply.type === wire.REPLY ? REPLY_FIELDS : ERROR_REPLY_FIELDS, `${name} reply`);
    }
    conforms(fixture.messages.layer.reply.content, BLOCK_HEADER_FIELDS, "layer reply");
    conforms(conforms(fixture.export_request, REQUEST_FIELDS, "export").payload, EXPORT_REQUEST_FIELDS, "export payload");
  });
});
