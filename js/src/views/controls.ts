/**
 * Toolbar: model name, kind switch (traces with several kinds), layer selector with prev/next,
 * what the matrix shows (mean or rollout of the selected heads, or one head), the mask toggle,
 * the sentence-pair filter, the weighting (raw or value-weighted, weighting.ts), Export and help; head chips in their colours; the trace's warnings.
 */

import { cssColor, headColor, rgbToOklab } from "../colors";
import { clear, h, listenGuarded } from "../dom";
import { hasPair, isSelfKind, PAIR_FILTERS, type PairFilter, type Selection } from "../state";
import { EXPORT_FORMATS, kindInfo, type ExportFormat, type KindInfo, type Meta } from "../wire";
import { focusOnly, type Changes, type ViewContext } from "./view";
import { WeightingSwitch } from "./weighting";

export interface ControlsActions {
  /** Export the main views as a download. */
  exportAs(format: ExportFormat): void;
  /** Show or hide the keyboard help. */
  toggleHelp(): void;
}

const PAIR_LABELS: Record<PairFilter, string> = { all: "All", AA: "A→A", AB: "A→B", BA: "B→A", BB: "B→B" };

const KIND_LABELS: Record<string, string> = {
  self: "self-attention",
  encoder: "encoder",
  decoder: "decoder",
  cross: "cross",
};

export class Controls {
  readonly element: HTMLElement;
  private readonly kindGroup: HTMLElement;
  private readonly layerSelect: HTMLSelectElement;
  private readonly prev: HTMLButtonElement;
  private readonly next: HTMLButtonElement;
  private readonly layerCount: HTMLElement;
  private readonly headSelect: HTMLSelectElement;
  private readonly maskToggle: HTMLButtonElement;
  private readonly pairGroup: HTMLElement;
  private readonly weighting: WeightingSwitch;
  private readonly exportMenu: HTMLElement;
  private readonly chips: HTMLElement;
  private readonly status: HTMLElement;
  private builtFor: KindInfo | null = null;
  private chipEls: HTMLButtonElement[] = [];
  private darkBuilt: boolean | null = null;
  private readonly cleanups: (() => void)[] = [];

  constructor(private readonly ctx: ViewContext, private readonly actions: ControlsActions) {
    const meta = ctx.source.meta;
    this.element = h("div", "txm-controls");
    const bar = h("div", "txm-toolbar");
    bar.setAttribute("role", "toolbar");

    const model = h("span", "txm-model", meta.model || "model");
    model.title = meta.model;

    this.kindGroup = h("span", "txm-group txm-kinds");
    this.kindGroup.setAttribute("role", "group");
    this.kindGroup.setAttribute("aria-label", "attention kind");
    if (meta.kinds.length > 1) {
      for (const k of meta.kinds) {
        const b = h("button", "txm-kind", KIND_LABELS[k.name] ?? k.name);
        b.type = "button";
        b.dataset.kind = k.name;
        this.on(b, "click", () => this.chooseKind(k.name));
        this.kindGroup.append(b);
      }
    } else {
      this.kindGroup.hidden = true;
    }

    const layerGroup = h("span", "txm-group");
    layerGroup.append(h("span", "txm-label", "Layer"));
    this.prev = h("button", "txm-step txm-prev", "‹");
    this.prev.type = "button";
    this.prev.title = "previous layer";
    this.prev.setAttribute("aria-label", "previous layer");
    this.next = h("button", "txm-step txm-next", "›");
    this.next.type = "button";
    this.next.title = "next layer";
    this.next.setAttribute("aria-label", "next layer");
    this.layerSelect = h("select", "txm-layer");
    this.layerSelect.setAttribute("aria-label", "layer");
    this.layerCount = h("span", "txm-muted");
    layerGroup.append(this.prev, this.layerSelect, this.next, this.layerCount);
    this.on(this.layerSelect, "change", () => this.ctx.store.set({ layer: Number(this.layerSelect.value) }));
    this.on(this.prev, "click", () => this.step(-1));
    this.on(this.next, "click", () => this.step(1));

    const headGroup = h("span", "txm-group");
    headGroup.append(h("span", "txm-label", "Matrix"));
    this.headSelect = h("select", "txm-matrix-head");
    this.headSelect.setAttribute("aria-label", "what the matrix shows");
    this.maskToggle = h("button", "txm-toggle txm-mask-toggle", "mask");
    this.maskToggle.type = "button";
    this.maskToggle.title = "show the attention mask (allowed vs masked) instead of weights";
    headGroup.append(this.headSelect, this.maskToggle);
    this.on(this.headSelect, "change", () => this.chooseMatrix(this.headSelect.value));
    this.on(this.maskToggle, "click", () => this.ctx.store.set({ showMask: !this.ctx.store.get().showMask }));

    this.pairGroup = h("span", "txm-group txm-pairs");
    this.pairGroup.setAttribute("role", "group");
    this.pairGroup.setAttribute("aria-label", "sentence pair: which query and key texts to show");
    this.pairGroup.append(h("span", "txm-label", "Pair"));
    for (const pair of PAIR_FILTERS) {
      const b = h("button", "txm-seg txm-pair", PAIR_LABELS[pair]);
      b.type = "button";
      b.dataset.pair = pair;
      b.title = pair === "all" ? "every query and key" : `queries from text ${pair[0]}, keys from text ${pair[1]}`;
      this.on(b, "click", () => this.ctx.store.set({ pair }));
      this.pairGroup.append(b);
    }

    this.status = h("span", "txm-status");
    this.status.setAttribute("aria-live", "polite");

    const tools = h("span", "txm-group txm-tools");
    const exportButton = h("button", "txm-step txm-export", "Export");
    exportButton.type = "button";
    exportButton.setAttribute("aria-haspopup", "menu");
    exportButton.title = "save the arc and matrix views as a picture";
    this.exportMenu = h("span", "txm-menu");
    this.exportMenu.setAttribute("role", "menu");
    this.exportMenu.hidden = true;
    for (const format of EXPORT_FORMATS) {
      const item = h("button", "txm-menu-item", format.toUpperCase());
      item.type = "button";
      item.setAttribute("role", "menuitem");
      item.dataset.format = format;
      this.on(item, "click", () => {
        this.exportMenu.hidden = true;
        this.actions.exportAs(format);
      });
      this.exportMenu.append(item);
    }
    this.on(exportButton, "click", () => {
      this.exportMenu.hidden = !this.exportMenu.hidden;
    });
    const exportWrap = h("span", "txm-menu-wrap");
    exportWrap.append(exportButton, this.exportMenu);
    this.on(exportWrap, "focusout", (e) => {
      if (!exportWrap.contains((e as FocusEvent).relatedTarget as Node | null)) this.exportMenu.hidden = true;
    });
    const help = h("button", "txm-step txm-help-button", "?");
    help.type = "button";
    help.title = "keyboard shortcuts";
    help.setAttribute("aria-label", "keyboard shortcuts");
    this.on(help, "click", () => this.actions.toggleHelp());
    tools.append(this.status, exportWrap, help);
    this.weighting = new WeightingSwitch(ctx);
    bar.append(model, this.kindGroup, layerGroup, headGroup, this.pairGroup, this.weighting.element);

    const headsRow = h("div", "txm-heads-row");
    headsRow.append(h("span", "txm-label", "Heads"));
    this.chips = h("span", "txm-chips");
    const all = h("button", "txm-link txm-heads-all", "all");
    all.type = "button";
    const none = h("button", "txm-link txm-heads-none", "none");
    none.type = "button";
    this.on(all, "click", () => this.ctx.store.set({ heads: this.allHeads() }));
    this.on(none, "click", () => this.ctx.store.set({ heads: [] }));
    this.on(this.chips, "click", (e) => this.onChip(e as MouseEvent));
    headsRow.append(this.chips, all, none, tools);

    this.element.append(bar, headsRow);
    if (meta.warnings.length > 0) {
      const warnings = h("div", "txm-warnings");
      for (const w of meta.warnings) {
        const item = h("div", "txm-warning");
        item.setAttribute("role", "note");
        item.append(h("span", "txm-warning-icon", "⚠"), h("span", "", w));
        warnings.append(item);
      }
      this.element.append(warnings);
    }
  }

  private on(target: EventTarget, type: string, fn: (e: Event) => void): void {
    this.cleanups.push(listenGuarded(target, type, fn, (err) => this.ctx.report(err)));
  }

  private info(): KindInfo {
    return kindInfo(this.ctx.source.meta, this.ctx.store.get().kind);
  }

  private allHeads(): number[] {
    return Array.from({ length: this.info().heads }, (_, i) => i);
  }

  private step(delta: number): void {
    const s = this.ctx.store.get();
    const layer = Math.min(this.info().layers - 1, Math.max(0, s.layer + delta));
    this.ctx.store.set({ layer });
  }

  private chooseKind(name: string): void {
    const s = this.ctx.store.get();
    if (s.kind === name) return;
    const meta: Meta = this.ctx.source.meta;
    const from = kindInfo(meta, s.kind), to = kindInfo(meta, name);
    const hadAll = s.heads.length === from.heads;
    const heads = hadAll ? Array.from({ length: to.heads }, (_, i) => i) : s.heads.filter((x) => x < to.heads);
    this.ctx.store.set({
      kind: name,
      layer: Math.min(s.layer, to.layers - 1),
      heads,
      head: s.head < to.heads ? s.head : -1,
      hover: -1,
      pinned: -1,
    });
  }

  private chooseMatrix(value: string): void {
    if (value === "mean" || value === "rollout") this.ctx.store.set({ head: -1, aggregate: value });
    else this.ctx.store.set({ head: Number(value) });
  }

  private onChip(e: MouseEvent): void {
    const target = e.target as Element | null;
    const chip = target?.closest?.(".txm-head") as HTMLElement | null;
    if (!chip) return;
    const head = Number(chip.dataset.head);
    const s = this.ctx.store.get();
    if ((e.altKey || e.ctrlKey || e.metaKey) && this.ctx.interventions?.live) {
      this.ctx.interventions.toggle(s.kind, s.layer, head); // ablate / restore: the kernel reruns
      return;
    }
    if (e.altKey || e.shiftKey) {
      // Solo this head; soloing the only selected head brings all back.
      const solo = s.heads.length === 1 && s.heads[0] === head;
      this.ctx.store.set({ heads: solo ? this.allHeads() : [head] });
      return;
    }
    const heads = s.heads.includes(head) ? s.heads.filter((x) => x !== head) : [...s.heads, head].sort((a, b) => a - b);
    this.ctx.store.set({ heads });
  }

  /** Show that a layer is being fetched ("" to clear). */
  setStatus(text: string): void {
    this.status.textContent = text;
    this.status.hidden = text === "";
  }

  /** The measured link to the kernel, as the status line's tooltip ("link 9.8 Mbit/s, 104 ms"). */
  setLink(text: string): void {
    this.status.title = text;
  }

  update(s: Readonly<Selection>, changes: Changes = "all"): void {
    if (focusOnly(changes)) return;
    const info = kindInfo(this.ctx.source.meta, s.kind);
    const dark = this.ctx.theme.dark;
    if (info !== this.builtFor || dark !== this.darkBuilt) this.build(info, dark);
    for (const b of Array.from(this.kindGroup.querySelectorAll<HTMLButtonElement>(".txm-kind"))) {
      const on = b.dataset.kind === s.kind;
      b.classList.toggle("txm-on", on);
      b.setAttribute("aria-pressed", String(on));
    }
    if (this.layerSelect.value !== String(s.layer)) this.layerSelect.value = String(s.layer);
    this.prev.disabled = s.layer <= 0;
    this.next.disabled = s.layer >= info.layers - 1;
    const matrixValue = s.head >= 0 ? String(s.head) : s.aggregate;
    if (this.headSelect.value !== matrixValue) this.headSelect.value = matrixValue;
    this.maskToggle.classList.toggle("txm-on", s.showMask);
    this.maskToggle.setAttribute("aria-pressed", String(s.showMask));
    this.pairGroup.hidden = !hasPair(this.ctx.source.meta, info);
    for (const b of Array.from(this.pairGroup.querySelectorAll<HTMLButtonElement>(".txm-pair"))) {
      const on = b.dataset.pair === s.pair;
      b.classList.toggle("txm-on", on);
      b.setAttribute("aria-pressed", String(on));
    }
    this.weighting.update(s);
    const selected = new Set(s.heads);
    const iv = this.ctx.interventions;
    this.chipEls.forEach((chip, i) => {
      const on = selected.has(i);
      chip.setAttribute("aria-pressed", String(on));
      chip.classList.toggle("txm-on", on);
      chip.classList.toggle("txm-shown", s.head === i);
      const ablated = iv?.isAblated(s.kind, s.layer, i) ?? false;
      chip.classList.toggle("txm-ablated", ablated);
      chip.title = `head ${i}${ablated ? " (ablated)" : ""} (click: toggle, shift-click: only this head` +
        `${iv?.live ? `, Alt-click: ${ablated ? "restore" : "ablate"} it (the model reruns)` : ""})`;
    });
    const [mean, roll] = [this.headSelect.options[0], this.headSelect.options[1]];
    if (mean) mean.textContent = `mean of ${s.heads.length} heads`;
    if (roll) roll.textContent = `rollout of ${s.heads.length} heads`;
  }

  private build(info: KindInfo, dark: boolean): void {
    this.builtFor = info;
    this.darkBuilt = dark;
    clear(this.layerSelect);
    for (let l = 0; l < info.layers; l++) {
      const o = h("option", "", String(l));
      o.value = String(l);
      this.layerSelect.append(o);
    }
    this.layerCount.textContent = `of ${info.layers}`;
    clear(this.headSelect);
    const mean = h("option", "", "mean of selected heads");
    mean.value = "mean";
    const roll = h("option", "", "rollout of selected heads");
    roll.value = "rollout";
    roll.disabled = !isSelfKind(info);
    roll.title = "attention rollout (Abnar & Zuidema 2020) through layers 0..layer";
    this.headSelect.append(mean, roll);
    for (let x = 0; x < info.heads; x++) {
      const o = h("option", "", `head ${x}`);
      o.value = String(x);
      this.headSelect.append(o);
    }
    clear(this.chips);
    this.chipEls = [];
    for (let x = 0; x < info.heads; x++) {
      const chip = h("button", "txm-head", String(x));
      chip.type = "button";
      chip.dataset.head = String(x);
      const color = headColor(x, info.heads, dark);
      chip.style.setProperty("--txm-head-color", cssColor(color));
      chip.style.setProperty("--txm-head-ink", rgbToOklab(color)[0] > 0.66 ? "#111" : "#fff");
      this.chipEls.push(chip);
      this.chips.append(chip);
    }
  }

  destroy(): void {
    for (const fn of this.cleanups) fn();
    this.weighting.destroy();
    this.element.remove();
  }
}
