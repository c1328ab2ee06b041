/**
 * The one request/reply channel between a view and Python, over the widget's custom messages
 * (the Python end and why it is not anywidget's `invoke`: tx_magic/wire/rpc.py).
 *
 * Either side sends `{type, id, payload}` (WireRequest) and gets, by id, `{type: REPLY, id,
 * content}` with the reply's bytes as the message's buffers (WireReply), or `{type: REPLY_ERROR,
 * id, message}` (WireErrorReply). `request` asks Python for one of REQUESTS (the table of what the
 * renderer asks, each with its timeout and its words for errors); `serve` answers Python's
 * requests of one type (the view's picture, REQUEST_EXPORT). One listener per view routes it all.
 * Every reply is timed for the link meter (link.ts), less the kernel's `kernel_ms`.
 */

import { errorMessage } from "./dom";
import { LINK, replyBytes, type LinkMeter } from "./link";
import type { WidgetModel } from "./sync";
import {
  REPLY, REPLY_ERROR, REQUEST_ABLATE, REQUEST_BLOCK, REQUEST_EDIT, REQUEST_LAYER, REQUEST_LENS, REQUEST_LOGITS,
  REQUEST_RESTORE, REQUEST_TOPK, type Unchecked, type WireAblateRequest, type WireBlockRequest, type WireEditRequest,
  type WireErrorReply, type WireLayerRequest, type WireLensRequest, type WireLogitsRequest, type WireReply,
  type WireRequest, type WireRestoreRequest, type WireTopKRequest,
  REQUEST_FLOW, REQUEST_QUERIES_KEYS, REQUEST_VALUE_NORMS, type WireFlowRequest, type WireQueriesKeysRequest,
  type WireValueNormsRequest,
} from "./wire";

/** The payload of each request type the renderer sends (Python's `wire.rpc.HANDLERS` answers them). */
export interface Payloads {
  [REQUEST_LAYER]: WireLayerRequest;
  [REQUEST_BLOCK]: WireBlockRequest;
  [REQUEST_TOPK]: WireTopKRequest;
  [REQUEST_LOGITS]: WireLogitsRequest;
  [REQUEST_LENS]: WireLensRequest;
  [REQUEST_ABLATE]: WireAblateRequest;
  [REQUEST_EDIT]: WireEditRequest;
  [REQUEST_RESTORE]: WireRestoreRequest;
  [REQUEST_VALUE_NORMS]: WireValueNormsRequest;
  [REQUEST_QUERIES_KEYS]: WireQueriesKeysRequest;
  [REQUEST_FLOW]: WireFlowRequest;
}
export type RequestType = keyof Payloads;

/** How one request type waits and speaks: "Python could not <verb> <subject>: ...". */
export interface RequestSpec<P> {
  timeoutMs: number;
  verb: string;
  subject: (payload: P) => string;
}

export const FETCH_TIMEOUT_MS = 30_000;
export const LENS_TIMEOUT_MS = 60_000;
/** A rerun captures the model again (a large model on a long text takes a while). */
export const RERUN_TIMEOUT_MS = 120_000;

/** Every request the renderer makes of Python. */
export const REQUESTS: { [T in RequestType]: RequestSpec<Payloads[T]> } = {
  [REQUEST_LAYER]: { timeoutMs: FETCH_TIMEOUT_MS, verb: "send", subject: (p) => `${p.kind} layer ${p.layer}` },
  [REQUEST_BLOCK]: {
    timeoutMs: FETCH_TIMEOUT_MS, verb: "send",
    subject: (p) => `${p.kind} layer ${p.layer} cells ${p.q0}..${p.q1} x ${p.k0}..${p.k1}`,
  },
  [REQUEST_TOPK]: { timeoutMs: FETCH_TIMEOUT_MS, verb: "send", subject: (p) => `${p.kind} top weights of layer ${p.layer}` },
  [REQUEST_LOGITS]: { timeoutMs: FETCH_TIMEOUT_MS, verb: "send", subject: (p) => `the logits after token ${p.position}` },
  [REQUEST_LENS]: { timeoutMs: LENS_TIMEOUT_MS, verb: "compute", subject: () => "the logit lens" },
  [REQUEST_ABLATE]: {
    timeoutMs: RERUN_TIMEOUT_MS, verb: "rerun the model",
    subject: (p) => (p.heads.length ? `with ${p.heads.map((x) => `L${x.layer}H${x.head}`).join(", ")} ablated` : "without ablations"),
  },
  [REQUEST_EDIT]: { timeoutMs: RERUN_TIMEOUT_MS, verb: "rerun the model", subject: (p) => `with ${p.edits.length} edited weight(s)` },
  [REQUEST_RESTORE]: { timeoutMs: RERUN_TIMEOUT_MS, verb: "restore", subject: () => "the model's own run" },
  // The first of these runs the model once more: as long as the lens may take.
  [REQUEST_VALUE_NORMS]: { timeoutMs: LENS_TIMEOUT_MS, verb: "compute", subject: (p) => `the ${p.kind} value norms` },
  [REQUEST_QUERIES_KEYS]: {
    timeoutMs: LENS_TIMEOUT_MS, verb: "send", subject: (p) => `the queries and keys of ${p.kind} layer ${p.layer}`,
  },
  [REQUEST_FLOW]: {
    timeoutMs: LENS_TIMEOUT_MS, verb: "compute",
    subject: (p) => (p.token < 0 ? "the information flow" : `the information flow into token ${p.token}`),
  },
};

/** A reply as it came: its content (still to be checked by a decoder) and its buffers. */
export interface Answer {
  content: unknown;
  buffers: unknown[];
}

/** Answers one type of Python's requests: the reply's content and buffers, or a rejection whose message Python shows. */
export type Handler = (payload: unknown) => Promise<{ content: object; buffers?: ArrayBufferView[] }>;

export interface Channel {
  /** Ask Python; resolves with the reply, rejects with a readable Error (Python's reason, a timeout, a closed view). */
  request<T extends RequestType>(type: T, payload: Payloads[T], options?: { timeoutMs?: number }): Promise<Answer>;
  /** Answer Python's requests of `type` with `handler`; returns the function that stops. */
  serve(type: string, handler: Handler): () => void;
  /** Stop listening; whatever still waits fails ("cancelled: the view was closed"). */
  dispose(): void;
  /** The meter every reply of this channel is timed by. */
  readonly meter: LinkMeter;
}

interface Pending {
  subject: string;
  verb: string;
  resolve: (answer: Answer) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout>;
  /** When the request was sent (performance.now()). */
  sent: number;
}

/** Any message from Python, before it is known to be a request, a reply or an error. */
type Incoming = Unchecked<WireRequest> & Unchecked<WireReply> & Unchecked<WireErrorReply>;

let channels = 0;

/** The channel of one view of `model`, its replies timed by `meter` (default: the page's). */
export function openChannel(model: WidgetModel, meter: LinkMeter = LINK): Channel {
  // Every view of a model hears every reply: ids differ per view, so each takes only its own.
  const prefix = `txm-${++channels}${Math.random().toString(36).slice(2, 6)}`;
  let counter = 0;
  const pending = new Map<string, Pending>();
  const served = new Map<string, Handler>();

  const answer = (request: Unchecked<WireRequest>, handler: Handler) => {
    const id = String(request.id);
    Promise.resolve()
      .then(() => handler(request.payload))
      .then(
        ({ content, buffers }) => model.send({ type: REPLY, id, content } satisfies WireReply, undefined, buffers ?? []),
        (err: unknown) => model.send({ type: REPLY_ERROR, id, message: errorMessage(err) } satisfies WireErrorReply),
      )
      .catch((err: unknown) => console.error("tx_magic: could not answer Python", err));
  };

  const settle = (m: Incoming, buffers: unknown[] | undefined) => {
    const id = m.id as string;
    const waiting = pending.get(id);
    if (!waiting) return; // another view's, or one that timed out
    pending.delete(id);
    clearTimeout(waiting.timer);
    if (m.type === REPLY) {
      meter.record(replyBytes(m.content, buffers ?? []), performance.now() - waiting.sent, Number(m.kernel_ms ?? 0));
      waiting.resolve({ content: m.content, buffers: buffers ?? [] });
    }
    else if (m.type === REPLY_ERROR) {
      waiting.reject(new Error(`Python could not ${waiting.verb} ${waiting.subject}: ${String(m.message ?? "unknown error")}`));
    } else {
      waiting.reject(new Error(
        `tx_magic could not read Python's reply for ${waiting.subject} (type ${String(m.type)}): ` +
          "are the kernel's tx_magic and this page's renderer the same version?",
      ));
    }
  };

  const onMessage = (msg: unknown, buffers?: unknown[]) => {
    if (typeof msg !== "object" || msg === null || Array.isArray(msg)) return;
    const m = msg as Incoming;
    const handler = typeof m.type === "string" ? served.get(m.type) : undefined;
    if (handler) answer(m, handler);
    else if (typeof m.id === "string") settle(m, buffers);
  };
  model.on("msg:custom", onMessage);

  const request = <T extends RequestType>(type: T, payload: Payloads[T], options: { timeoutMs?: number } = {}) =>
    new Promise<Answer>((resolve, reject) => {
      const spec = REQUESTS[type] as RequestSpec<Payloads[T]>;
      const timeoutMs = options.timeoutMs ?? spec.timeoutMs;
      const subject = spec.subject(payload), id = `${prefix}-${++counter}`;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(
          `no reply from Python for ${subject} after ${Math.round(timeoutMs / 1000)} s: ` +
            "is the kernel busy, restarted or gone? Re-run the cell to show the widget again.",
        ));
      }, timeoutMs);
      pending.set(id, { subject, verb: spec.verb, resolve, reject, timer, sent: performance.now() });
      try {
        model.send({ type, id, payload } satisfies WireRequest);
      } catch (err) {
        clearTimeout(timer);
        pending.delete(id);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });

  return {
    request,
    meter,
    serve(type, handler) {
      served.set(type, handler);
      return () => {
        if (served.get(type) === handler) served.delete(type);
      };
    },
    dispose() {
      model.off("msg:custom", onMessage);
      served.clear();
      for (const p of pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error(`request for ${p.subject} cancelled: the view was closed`));
      }
      pending.clear();
    },
  };
}
