/** The event listeners a view adds, with their errors shown in the widget, removed together. */

import { listenGuarded } from "../dom";

export class Listeners {
  private readonly cleanups: (() => void)[] = [];

  constructor(private readonly report: (err: unknown) => void) {}

  /** Listen to `type` on `target`; an error thrown by `fn` goes to `report`. */
  on(target: EventTarget, type: string, fn: (e: Event) => void, capture = false): void {
    this.cleanups.push(listenGuarded(target, type, fn, (err) => this.report(err), capture));
  }

  /** Remove every listener added. */
  removeAll(): void {
    for (const fn of this.cleanups) fn();
  }
}
