/** The "?" popover: the keyboard shortcuts (keyboard.ts's KEYS). */

import { h } from "../dom";
import { KEYS } from "../keyboard";

export class Help {
  readonly element: HTMLElement;

  constructor() {
    this.element = h("div", "txm-help");
    this.element.setAttribute("role", "dialog");
    this.element.setAttribute("aria-label", "keyboard shortcuts");
    this.element.hidden = true;
    this.element.append(h("div", "txm-help-title", "Keyboard (click the widget first)"));
    const list = h("dl", "txm-help-keys");
    for (const [keys, what] of KEYS) list.append(h("dt", "", keys), h("dd", "", what));
    this.element.append(list);
  }

  toggle(show = this.element.hidden): void {
    this.element.hidden = !show;
  }
}
