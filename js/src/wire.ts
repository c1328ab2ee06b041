/**
 * The wire between Python and the renderer, as the rest of the renderer imports it:
 *
 * - wire-schema.ts: the constants and an interface per JSON object that crosses, mirroring the
 *   TypedDicts of tx_magic/wire/schema.py (checked both ways by js/tests/wire-schema.test.ts);
 * - wire-bytes.ts: bytes in every form a host hands over, as typed arrays;
 * - wire-decode.ts: `_meta`, value and top-k blocks, masks and the image, checked and decoded;
 * - wire-analyses.ts: value norms, queries and keys, the flow graph (requests beyond the weights);
 * - rpc.ts (imported on its own): the one request/reply channel over custom messages.
 */

/** Bytes as they may arrive: anywidget gives DataView, Colab Uint8Array, reports base64 text. */
export type WireBytes = DataView | Uint8Array | ArrayBuffer | string;

export * from "./wire-analyses";
export * from "./wire-bytes";
export * from "./wire-decode";
export * from "./wire-schema";
