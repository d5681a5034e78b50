// Time as the token source sees it. Injected so tests can move through a 24-hour token lifetime in
// microseconds; production uses the system clock. Timers are unref'd: a pending refresh alone
// never keeps the process alive.

export type TimerHandle = { readonly __timer: unique symbol } | object;

export interface Clock {
  /** Milliseconds since the epoch (wall time: JWT exp claims are wall time too). */
  now(): number;
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(callback, delayMs) {
    const timer = setTimeout(callback, Math.max(0, Math.min(delayMs, 2 ** 31 - 1)));
    timer.unref();
    return timer;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};
