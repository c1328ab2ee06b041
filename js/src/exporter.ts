/**
 * The current arc and matrix views as SVG or PNG bytes, for the toolbar's Export menu and for
 * Python's `w.save_png()` / `w.save_svg()`. Loads what the picture needs (the layer; every
 * layer for a rollout) first. PNG is the SVG drawn onto a canvas at `scale`.
 */

import { kindInfo, type ExportFormat } from "./wire";
import { buildSvg, type SvgPicture } from "./svg";
import { matrixFor, showsRollout } from "./shown";
import type { ViewContext } from "./views/view";

export type ExportContext = Pick<ViewContext, "source" | "store" | "frames" | "matrices" | "derived" | "theme">;

/** Largest canvas side and area Chromium and Firefox accept. */
const MAX_SIDE = 16_384;
const MAX_AREA = 120_000_000;

/** The SVG picture of what the views show now. */
export async function exportSvg(ctx: ExportContext): Promise<SvgPicture> {
  const s = ctx.store.get();
  if (kindInfo(ctx.source.meta, s.kind).streamed) {
    throw new Error(
      "tx_magic: this long input was captured reduced, so there is no full layer to export as a picture: " +
        "take a screenshot, or read the values in Python (trace.stats(), trace.block(...))",
    );
  }
  const layer = await ctx.source.getLayer(s.kind, s.layer);
  if (showsRollout(s)) await ctx.derived.loadLayers(s.kind);
  const meta = ctx.source.meta;
  const frame = ctx.frames.frame(kindInfo(meta, s.kind), layer, s.pair);
  const matrix = matrixFor(ctx, s, frame);
  if (!matrix) throw new Error("tx_magic: the rollout is not ready");
  return buildSvg({ meta, state: s, frame, matrix, dark: ctx.theme.dark }, rasterize);
}

/** The picture as file bytes. */
export async function exportBytes(ctx: ExportContext, format: ExportFormat, scale = 2): Promise<Uint8Array<ArrayBuffer>> {
  const picture = await exportSvg(ctx);
  if (format === "svg") return new TextEncoder().encode(picture.svg);
  return svgToPng(picture, scale);
}

/** A heat map's packed RGBA pixels as a PNG data URL. */
function rasterize(colors: Uint32Array, cols: number, rows: number): string {
  const canvas = document.createElement("canvas");
  canvas.width = cols;
  canvas.height = rows;
  const ctx = canvas.getContext("2d");
  if (!ctx) throw new Error("tx_magic: this browser cannot draw on a canvas, so the heat map cannot be embedded");
  const img = ctx.createImageData(cols, rows);
  new Uint32Array(img.data.buffer, img.data.byteOffset, cols * rows).set(colors);
  ctx.putImageData(img, 0, 0);
  return canvas.toDataURL("image/png");
}

/** Draw an SVG picture onto a canvas at `scale` (less if the canvas would be too big) and encode PNG. */
export async function svgToPng(picture: SvgPicture, scale: number): Promise<Uint8Array<ArrayBuffer>> {
  const { width, height } = picture;
  const fit = Math.min(scale, MAX_SIDE / width, MAX_SIDE / height, Math.sqrt(MAX_AREA / (width * height)));
  const url = URL.createObjectURL(new Blob([picture.svg], { type: "image/svg+xml" }));
  try {
    const img = new Image();
    img.src = url;
    await img.decode();
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(width * fit));
    canvas.height = Math.max(1, Math.round(height * fit));
    const ctx = canvas.getContext("2d");
    if (!ctx) throw new Error("tx_magic: this browser cannot draw on a canvas, so no PNG can be made");
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, "image/png"));
    if (!blob) throw new Error("tx_magic: the browser could not encode the PNG");
    return new Uint8Array(await blob.arrayBuffer());
  } finally {
    URL.revokeObjectURL(url);
  }
}

/** A file name for the picture: model, kind, layer, head. */
export function exportName(ctx: ExportContext, format: ExportFormat): string {
  const s = ctx.store.get();
  const model = ctx.source.meta.model.split("/").pop() || "attention";
  const what = s.head >= 0 ? `head${s.head}` : s.aggregate;
  return `${model}-${s.kind}-layer${s.layer}-${what}.${format}`.replace(/[^\w.-]+/g, "_");
}

/** Save bytes as a download in the browser. */
export function download(bytes: Uint8Array<ArrayBuffer>, filename: string, format: ExportFormat): void {
  const type = format === "svg" ? "image/svg+xml" : "image/png";
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.style.display = "none";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
