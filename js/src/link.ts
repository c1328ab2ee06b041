/**
 * The link meter: how fast replies come from the kernel, measured on every rpc reply (rpc.ts).
 *
 * Each reply gives a sample: its bytes (content JSON + buffers) over the time from request to reply,
 * less the kernel's own compute time (the reply's `kernel_ms`). Latency is the minimum over small
 * replies (the round trip with hardly any bytes); bandwidth an EWMA over replies of at least
 * BANDWIDTH_MIN_BYTES, each transfer timed without that latency. Unmeasured counts as slow.
 */

/** Replies this large or larger time the bandwidth; smaller ones the round trip. */
export const BANDWIDTH_MIN_BYTES = 64 * 1024;
/** Weight of the newest bandwidth sample. */
export const EWMA_WEIGHT = 0.3;
/** At or above this many bits per second the link is fast (loopback, a LAN). */
export const FAST_LINK_BITS = 50e6;

export class LinkMeter {
  private bytesPerS: number | null = null;
  private rttMs: number | null = null;
  private samples = 0;
  private readonly listeners = new Set<() => void>();

  /** One reply: `bytes` arrived `elapsedMs` after the request, of which the kernel computed `kernelMs`. */
  record(bytes: number, elapsedMs: number, kernelMs = 0): void {
    if (!(bytes >= 0) || !(elapsedMs >= 0)) return;
    const wire = Math.max(0, elapsedMs - (Number.isFinite(kernelMs) && kernelMs > 0 ? kernelMs : 0));
    this.samples++;
    if (bytes < BANDWIDTH_MIN_BYTES) {
      this.rttMs = this.rttMs === null ? wire : Math.min(this.rttMs, wire);
    } else {
      const transferS = Math.max(wire - (this.rttMs ?? 0), 0.5) / 1000; // never faster than 0.5 ms per reply
      const rate = bytes / transferS;
      this.bytesPerS = this.bytesPerS === null ? rate : EWMA_WEIGHT * rate + (1 - EWMA_WEIGHT) * this.bytesPerS;
    }
    for (const fn of this.listeners) fn();
  }

  /** Estimated bytes per second, null until a large reply was timed. */
  get bandwidth(): number | null {
    return this.bytesPerS;
  }

  /** Estimated round trip in ms, null until a small reply was timed. */
  get latency(): number | null {
    return this.rttMs;
  }

  /** Replies measured so far. */
  get count(): number {
    return this.samples;
  }

  /** Whether the link is measured fast (>= FAST_LINK_BITS); unmeasured is slow. */
  get fast(): boolean {
    return this.bytesPerS !== null && this.bytesPerS * 8 >= FAST_LINK_BITS;
  }

  /** Call `fn` after every sample; returns the function that stops. */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** In words, e.g. "link 9.8 Mbit/s, 104 ms"; "link not measured yet" before any sample. */
  describe(): string {
    const parts: string[] = [];
    if (this.bytesPerS !== null) parts.push(`${formatBits(this.bytesPerS * 8)}`);
    if (this.rttMs !== null) parts.push(`${Math.round(this.rttMs)} ms`);
    return parts.length ? `link ${parts.join(", ")}` : "link not measured yet";
  }
}

function formatBits(bits: number): string {
  if (bits >= 1e9) return `${(bits / 1e9).toFixed(1)} Gbit/s`;
  if (bits >= 1e6) return `${(bits / 1e6).toFixed(1)} Mbit/s`;
  return `${(bits / 1e3).toFixed(0)} kbit/s`;
}

/** Bytes of a reply as it crossed: its content as JSON plus its buffers. */
export function replyBytes(content: unknown, buffers: readonly unknown[]): number {
  let total = 0;
  try {
    total += JSON.stringify(content ?? null).length;
  } catch {
    // content that is not JSON (never from Python): count only the buffers
  }
  for (const b of buffers) {
    if (b instanceof ArrayBuffer || ArrayBuffer.isView(b)) total += b.byteLength;
  }
  return total;
}

/** The page's one meter: every view talks to the kernel over the same link. */
export const LINK = new LinkMeter();
