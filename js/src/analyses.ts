/**
 * The Q/K and Flow tabs' data, asked of Python (REQUEST_QUERIES_KEYS, REQUEST_FLOW over the view's
 * channel) or given by a report, and kept per question: one query's vectors per layer, one token's
 * routes per threshold. A failed question may be asked again.
 */

import type { Channel } from "./rpc";
import {
  decodeFlow, decodeQueriesKeys, REQUEST_FLOW, REQUEST_QUERIES_KEYS, type ANALYSIS_FLOW, type ANALYSIS_QK, type FlowGraph,
  type Meta,
  type QueriesKeys,
} from "./wire";

export interface AnalysisFetchers {
  queriesKeys?: (kind: string, layer: number, query: number) => Promise<QueriesKeys>;
  flow?: (kind: string, token: number, threshold: number) => Promise<FlowGraph>;
}

/** The fetchers over a view's channel. */
export function channelAnalyses(channel: Channel): AnalysisFetchers {
  return {
    queriesKeys: (kind, layer, query) => channel.request(REQUEST_QUERIES_KEYS, { kind, layer, query })
      .then(({ content, buffers }) => decodeQueriesKeys(content, buffers)),
    flow: (kind, token, threshold) => channel.request(REQUEST_FLOW, { kind, token, threshold })
      .then(({ content }) => decodeFlow(content)),
  };
}

/** Whether the kernel offers `analysis` (ANALYSIS_QK, ANALYSIS_FLOW) for some kind of the trace. */
export function offered(meta: Meta, analysis: string): boolean {
  return Object.values(meta.analyses ?? {}).some((names) => names.includes(analysis));
}

export function offersFor(meta: Meta, kind: string, analysis: typeof ANALYSIS_QK | typeof ANALYSIS_FLOW): boolean {
  return (meta.analyses?.[kind] ?? []).includes(analysis);
}

/** Answers kept by question, each asked once while it is pending; `onArrive` runs when any settles. */
export class Answers<T> {
  private readonly have = new Map<string, T>();
  private readonly failed = new Map<string, Error>();
  private readonly pending = new Set<string>();
  private readonly order: string[] = [];

  constructor(private readonly onArrive: () => void, private readonly capacity = 64) {}

  peek(key: string): T | undefined {
    return this.have.get(key);
  }

  error(key: string): Error | undefined {
    return this.failed.get(key);
  }

  isPending(key: string): boolean {
    return this.pending.has(key);
  }

  /** Ask `make()` for `key` unless it is here, pending or failed (`retry` clears a failure first). */
  want(key: string, make: () => Promise<T>, retry = false): void {
    if (retry) this.failed.delete(key);
    if (this.have.has(key) || this.pending.has(key) || this.failed.has(key)) return;
    this.pending.add(key);
    let request: Promise<T>;
    try {
      request = make();
    } catch (err) {
      request = Promise.reject(err);
    }
    request.then(
      (value) => {
        this.have.set(key, value);
        this.order.push(key);
        while (this.order.length > this.capacity) this.have.delete(this.order.shift() as string);
      },
      (err: unknown) => {
        this.failed.set(key, err instanceof Error ? err : new Error(String(err)));
      },
    ).finally(() => {
      this.pending.delete(key);
      this.onArrive();
    });
  }
}
