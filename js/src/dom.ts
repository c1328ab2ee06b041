/** Small DOM and canvas helpers. Text always goes in through textContent, never innerHTML. */

/** A new element with a class and (optionally) text. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = "",
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Remove every child of `node`. */
/**
 * addEventListener whose handler errors go to `report` (the widget shows them, never a blank
 * area) instead of the console. Returns the function that removes it.
 */
export function listenGuarded(
  target: EventTarget, type: string, fn: (e: Event) => void, report: (err: unknown) => void, capture = false,
): () => void {
  const guarded = (e: Event) => {
    try {
      fn(e);
    } catch (err) {
      report(err);
    }
  };
  target.addEventListener(type, guarded, capture);
  return () => target.removeEventListener(type, guarded, capture);
}

export function clear(node: Element): void {
  while (node.firstChild) node.removeChild(node.firstChild);
}

/** The message of anything thrown. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  if (typeof err === "string") return err;
  try {
    return JSON.stringify(err);
  } catch {
    return String(err);
  }
}

/** A visible error box (`.txm-error`) holding the message as text. */
export function errorBox(err: unknown, title = "tx_magic could not draw this view"): HTMLElement {
  const box = h("div", "txm-error");
  box.setAttribute("role", "alert");
  box.append(h("strong", "txm-error-title", title), h("div", "txm-error-message", errorMessage(err)));
  return box;
}

/**
 * Size a canvas for `cssWidth` x `cssHeight` CSS pixels at the device pixel ratio and return its
 * 2D context scaled to CSS pixels, or null where canvas is unavailable (e.g. jsdom).
 */
export function prepareCanvas(
  canvas: HTMLCanvasElement,
  cssWidth: number,
  cssHeight: number,
  maxPixels = 16_000_000,
): { ctx: CanvasRenderingContext2D | null; scale: number } {
  let scale = typeof window !== "undefined" && window.devicePixelRatio > 0 ? window.devicePixelRatio : 1;
  const w = Math.max(1, cssWidth), hgt = Math.max(1, cssHeight);
  if (w * hgt * scale * scale > maxPixels) scale = Math.max(0.25, Math.sqrt(maxPixels / (w * hgt)));
  const pw = Math.max(1, Math.round(w * scale)), ph = Math.max(1, Math.round(hgt * scale));
  if (canvas.width !== pw) canvas.width = pw;
  if (canvas.height !== ph) canvas.height = ph;
  canvas.style.width = `${w}px`;
  canvas.style.height = `${hgt}px`;
  let ctx: CanvasRenderingContext2D | null = null;
  try {
    ctx = canvas.getContext("2d");
  } catch {
    ctx = null;
  }
  if (ctx) ctx.setTransform(scale, 0, 0, scale, 0, 0);
  return { ctx, scale };
}

/** Whether the page around `node` uses a dark theme (JupyterLab, VS Code, page colours, OS). */
export function detectDark(node: Element): boolean {
  const doc = node.ownerDocument;
  const body = doc?.body;
  if (body) {
    const jp = body.getAttribute("data-jp-theme-light");
    if (jp === "false") return true;
    if (jp === "true") return false;
    if (body.classList.contains("vscode-dark") || body.classList.contains("vscode-high-contrast")) {
      return !body.classList.contains("vscode-high-contrast-light");
    }
    if (body.classList.contains("vscode-light")) return false;
  }
  const view = doc?.defaultView;
  if (view && typeof view.getComputedStyle === "function") {
    for (let n: Element | null = node; n; n = n.parentElement) {
      const bg = view.getComputedStyle(n).backgroundColor;
      const m = /rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)(?:[,\s/]+([\d.]+))?/.exec(bg || "");
      if (m && (m[4] === undefined || Number(m[4]) > 0.5)) {
        const lum = (0.2126 * Number(m[1]) + 0.7152 * Number(m[2]) + 0.0722 * Number(m[3])) / 255;
        return lum < 0.45;
      }
    }
    try {
      return view.matchMedia?.("(prefers-color-scheme: dark)").matches ?? false;
    } catch {
      return false;
    }
  }
  return false;
}
