/** Bytes as hosts hand them over (DataView, Uint8Array, ArrayBuffer, base64 text) as typed arrays. */

import type { WireBytes } from "./wire";

function base64ToBytes(text: string): Uint8Array {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** Any wire bytes as a Uint8Array view (no copy unless the input is base64 text). */
export function toBytes(buf: WireBytes): Uint8Array {
  if (typeof buf === "string") return base64ToBytes(buf);
  if (buf instanceof Uint8Array) return buf;
  if (ArrayBuffer.isView(buf)) return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf instanceof ArrayBuffer) return new Uint8Array(buf);
  // Typed arrays from another realm (iframes, test environments) fail instanceof checks.
  const like = buf as { buffer?: ArrayBuffer; byteOffset?: number; byteLength?: number };
  if (like?.buffer && typeof like.byteLength === "number") {
    return new Uint8Array(like.buffer, like.byteOffset ?? 0, like.byteLength);
  }
  throw new TypeError(`tx_magic: expected binary data, got ${describe(buf)}`);
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Little-endian float32 bytes as a Float32Array. Views the same memory when the offset is
 * 4-aligned (the usual case), copies when it is not (Float32Array cannot start unaligned).
 */
export function toFloat32(buf: WireBytes): Float32Array {
  const bytes = toBytes(buf);
  if (bytes.byteLength % 4 !== 0) {
    throw new Error(`tx_magic: float32 data has ${bytes.byteLength} bytes, not a multiple of 4`);
  }
  const n = bytes.byteLength / 4;
  if (!LITTLE_ENDIAN_HOST) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
    return out;
  }
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  return new Float32Array(bytes.slice().buffer, 0, n);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? (value.constructor?.name ?? "an object") : typeof value;
}

/** Little-endian int32 bytes as an Int32Array (a view when aligned, else a copy). */
export function toInt32(buf: WireBytes): Int32Array {
  const bytes = toBytes(buf);
  if (bytes.byteLength % 4 !== 0) throw new Error(`tx_magic: int32 data has ${bytes.byteLength} bytes, not a multiple of 4`);
  const n = bytes.byteLength / 4;
  if (!LITTLE_ENDIAN_HOST) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return Int32Array.from({ length: n }, (_, i) => view.getInt32(i * 4, true));
  }
  if (bytes.byteOffset % 4 === 0) return new Int32Array(bytes.buffer, bytes.byteOffset, n);
  return new Int32Array(bytes.slice().buffer, 0, n);
}
