/**
 * A message in the widget when its kernel side is gone. JupyterLab and Notebook 7 keep a view
 * drawn after the kernel restarts: the widget manager then sets every model's `comm_live` to
 * false, which fires `comm_live_update` (ipywidgets sets it otherwise only while creating the
 * model, before any view renders). The view still answers hovers but reaches no Python, so the
 * drawing stays, with a banner that says so and what to do. Other hosts never fire the event.
 */

import { h } from "./dom";
import type { WidgetModel } from "./sync";

export const DISCONNECTED_MESSAGE =
  "The kernel restarted or disconnected: this view keeps what it has drawn, but nothing reaches Python " +
  "any more (other layers, exports). Re-run the cell for a live widget.";

/** Prepend the banner to `el` once the host says the model lost its kernel; returns the cleanup. */
export function watchConnection(model: WidgetModel, el: HTMLElement): () => void {
  let banner: HTMLElement | null = null;
  const onLive = () => {
    if (banner !== null) return;
    banner = h("div", "txm-error txm-disconnected");
    banner.setAttribute("role", "status");
    banner.append(h("strong", "txm-error-title", "Not connected to the kernel"),
      h("div", "txm-error-message", DISCONNECTED_MESSAGE));
    el.prepend(banner);
  };
  model.on("comm_live_update", onLive);
  return () => {
    model.off("comm_live_update", onLive);
    banner?.remove();
    banner = null;
  };
}
