/** A hover card for small multiples: a larger thumbnail of the hovered head plus a few lines of text. */

import { clear, h, prepareCanvas } from "../dom";
import { paintPooled, palette, type Pooled } from "../thumbnails";

const SIZE = 132;

export class Preview {
  readonly element: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly text: HTMLElement;

  constructor() {
    this.element = h("div", "txm-preview");
    this.element.hidden = true;
    this.canvas = h("canvas", "txm-preview-canvas");
    this.text = h("div", "txm-preview-text");
    this.element.append(this.canvas, this.text);
  }

  /** Show `pooled` with `lines` (first line bold) next to the pointer, inside `host`. */
  show(host: HTMLElement, e: MouseEvent, pooled: Pooled | null, lines: string[], dark: boolean): void {
    clear(this.text);
    this.text.append(...lines.map((line, i) => h(i === 0 ? "strong" : "div", "", line)));
    this.canvas.hidden = !pooled;
    if (pooled) {
      const w = pooled.aspect > 1 ? SIZE / pooled.aspect : SIZE, hgt = pooled.aspect > 1 ? SIZE : SIZE * pooled.aspect;
      const { ctx } = prepareCanvas(this.canvas, Math.max(8, w), Math.max(8, hgt));
      if (ctx && typeof ctx.createImageData === "function") {
        const img = ctx.createImageData(this.canvas.width, this.canvas.height);
        const px = new Uint32Array(img.data.buffer, img.data.byteOffset, this.canvas.width * this.canvas.height);
        paintPooled(px, this.canvas.width, 0, 0, this.canvas.width, this.canvas.height, pooled, palette(dark));
        ctx.putImageData(img, 0, 0);
      }
    }
    this.element.hidden = false;
    const box = host.getBoundingClientRect();
    const width = this.element.offsetWidth || SIZE + 16;
    let x = e.clientX - box.left + 16;
    if (box.width > 0 && x + width > box.width) x = Math.max(0, e.clientX - box.left - width - 12);
    this.element.style.left = `${x}px`;
    this.element.style.top = `${e.clientY - box.top + 12}px`;
  }

  hide(): void {
    this.element.hidden = true;
  }
}
