// A clock the test moves by hand: advance(ms) fires every timer that falls due, in order.

import type { Clock, TimerHandle } from '../../src/token/clock.js';

interface Timer {
  at: number;
  callback: () => void;
  id: number;
}

export class ManualClock implements Clock {
  #now: number;
  #timers: Timer[] = [];
  #nextId = 0;

  constructor(start = Date.UTC(2026, 10, 25, 12, 0, 0)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const timer = { at: this.#now + Math.max(0, delayMs), callback, id: this.#nextId++ };
    this.#timers.push(timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers = this.#timers.filter((t) => t !== handle);
  }

  /** When the next timer fires, or undefined. */
  nextTimerAt(): number | undefined {
    return this.#timers.reduce<number | undefined>((min, t) => (min === undefined || t.at < min ? t.at : min), undefined);
  }

  advance(ms: number): void {
    const until = this.#now + ms;
    for (;;) {
      const due = this.#timers.filter((t) => t.at <= until).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#now = due.at;
      due.callback();
    }
    this.#now = until;
  }
}
