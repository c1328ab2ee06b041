/**
 * Interventions from the views: what was done to the run shown (`_meta.intervention`), and, when the
 * kernel can rerun its model (`_reruns`), the requests that ablate a head, edit a weight or restore the
 * model's own run (REQUEST_ABLATE / REQUEST_EDIT / REQUEST_RESTORE over the view's channel). Python
 * answers by replacing the widget's data, which draws the new run; a failure comes back as an error
 * shown in the widget, and the run shown stays.
 */

import { errorMessage } from "./dom";
import {
  ABLATIONS, REQUEST_ABLATE, REQUEST_EDIT, REQUEST_RESTORE, toFloat32, unchecked, type Ablation, type Meta, type WireBytes,
  type WireHeadRef, type WireInterventionInfo, type WireReruns, type WireWeightEdit,
} from "./wire";

/** Sends one rerun request; resolves when Python answered (its new data may have replaced this view first). */
export type RerunSender = (type: typeof REQUEST_ABLATE | typeof REQUEST_EDIT | typeof REQUEST_RESTORE, payload: object) => Promise<unknown>;

/** The unintervened run's logits after one position. */
export interface Baseline {
  position: number;
  logits: Float32Array;
}

/** `_meta.intervention`, checked, or null. */
export function interventionOf(meta: Meta): WireInterventionInfo | null {
  const raw = meta.intervention as unknown;
  if (raw === undefined || raw === null) return null;
  const m = unchecked<WireInterventionInfo>(raw, "the intervention");
  const list = <T>(v: unknown, what: string): T[] => {
    if (!Array.isArray(v)) throw new Error(`tx_magic: malformed intervention: ${what} is not a list`);
    return v as T[];
  };
  return {
    label: String(m.label ?? ""), ablation: String(m.ablation ?? "zero"),
    ablate: list<WireHeadRef>(m.ablate, "ablate"), edit: list<WireWeightEdit>(m.edit, "edit"),
  };
}

/** `_reruns` ({} or absent: the kernel cannot rerun), checked. */
export function rerunsOf(raw: unknown): { ablation: Ablation; baseline: Baseline | null } | null {
  if (raw === undefined || raw === null || (typeof raw === "object" && Object.keys(raw).length === 0)) return null;
  const r = unchecked<WireReruns>(raw, "_reruns");
  const ablation: Ablation = (ABLATIONS as readonly string[]).includes(String(r.ablation)) ? (r.ablation as Ablation) : "zero";
  let baseline: Baseline | null = null;
  if (r.baseline !== undefined && r.baseline !== null) {
    const b = r.baseline as { position?: unknown; data?: unknown };
    if (typeof b.position !== "number") throw new Error("tx_magic: malformed _reruns: baseline.position");
    baseline = { position: b.position, logits: toFloat32(b.data as WireBytes) };
  }
  return { ablation, baseline };
}

/** "L5H1" (and the kind for other than self-attention). */
export function headName(h: WireHeadRef): string {
  return h.kind === "self" || h.kind === "encoder" ? `L${h.layer}H${h.head}` : `${h.kind} L${h.layer}H${h.head}`;
}

const same = (a: WireHeadRef, b: WireHeadRef) => a.kind === b.kind && a.layer === b.layer && a.head === b.head;

export class Interventions {
  /** What was done to the run shown, or null. */
  readonly info: WireInterventionInfo | null;
  /** Whether the kernel reruns the model on request. */
  readonly live: boolean;
  readonly baseline: Baseline | null;
  ablation: Ablation;
  private pending = 0;
  private readonly listeners = new Set<(busy: boolean) => void>();

  constructor(meta: Meta, reruns: unknown, private readonly send: RerunSender | null,
              private readonly report: (err: unknown) => void) {
    this.info = interventionOf(meta);
    const r = send ? rerunsOf(reruns) : null;
    this.live = r !== null;
    this.baseline = r?.baseline ?? null;
    this.ablation = (this.info?.ablation as Ablation | undefined) ?? r?.ablation ?? "zero";
  }

  get busy(): boolean {
    return this.pending > 0;
  }

  /** Hear when a rerun starts (true) and ends (false); returns the unsubscribe. */
  onBusy(fn: (busy: boolean) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  isAblated(kind: string, layer: number, head: number): boolean {
    return this.info?.ablate.some((h) => same(h, { kind, layer, head })) ?? false;
  }

  /** Heads of `kind` ablated, as layer * heads + head keys. */
  ablatedKeys(kind: string, heads: number): number[] {
    return (this.info?.ablate ?? []).filter((h) => h.kind === kind).map((h) => h.layer * heads + h.head);
  }

  /** Ablate the head if it is not, restore it if it is: the kernel reruns. */
  toggle(kind: string, layer: number, head: number): void {
    const now = this.info?.ablate ?? [];
    const head_ = { kind, layer, head };
    const heads = now.some((h) => same(h, head_)) ? now.filter((h) => !same(h, head_)) : [...now, head_];
    this.request(REQUEST_ABLATE, { heads, ablation: this.ablation });
  }

  /** Rerun the same heads with zero or mean ablation. */
  setAblation(ablation: Ablation): void {
    this.ablation = ablation;
    if (this.info?.ablate.length) this.request(REQUEST_ABLATE, { heads: this.info.ablate, ablation });
  }

  /** Set one weight (0 blocks the key), keeping the other edits (one of the same cell is replaced). */
  edit(edit: WireWeightEdit): void {
    const others = (this.info?.edit ?? []).filter((e) => !(same(e, edit) && e.query === edit.query && e.key === edit.key));
    this.request(REQUEST_EDIT, { edits: [...others, edit] });
  }

  /** Back to the model's own run. */
  restore(): void {
    this.request(REQUEST_RESTORE, {});
  }

  private request(type: Parameters<RerunSender>[0], payload: object): void {
    if (!this.send || !this.live) {
      this.report(new Error("this view cannot rerun the model: it has no kernel holding one (a report, or a widget made from a trace)"));
      return;
    }
    this.pending++;
    this.emit();
    this.send(type, payload).then(
      () => this.done(),
      (err: unknown) => {
        this.done();
        // Python's answer replaced this view's data: the old view's request is "cancelled", not failed.
        if (!/cancelled: the view was closed/.test(errorMessage(err))) this.report(err);
      },
    );
  }

  private done(): void {
    this.pending = Math.max(0, this.pending - 1);
    this.emit();
  }

  private emit(): void {
    for (const fn of [...this.listeners]) fn(this.busy);
  }
}
