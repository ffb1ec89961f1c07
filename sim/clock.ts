// Time for the simulated engines, in milliseconds of *model* time. The HTTP simulator runs on a
// scaled real clock (model time passes `scale` times faster than wall time); calibration runs
// on a discrete-event clock that jumps from event to event with no waiting at all.

export interface Clock {
  now(): number;
  /** Runs `fn` once model time reaches `timeMs`; returns a cancel function. */
  at(timeMs: number, fn: () => void): () => void;
  /** Runs `fn` once model time reaches `now() + delayMs`; returns a cancel function. */
  after(delayMs: number, fn: () => void): () => void;
}

export class ScaledClock implements Clock {
  private readonly origin = performance.now();
  constructor(readonly scale = 1) {
    if (!(scale > 0)) throw new Error("time scale must be positive");
  }
  now(): number {
    return (performance.now() - this.origin) * this.scale;
  }
  at(timeMs: number, fn: () => void): () => void {
    const timer = setTimeout(fn, Math.max(0, (timeMs - this.now()) / this.scale));
    return () => clearTimeout(timer);
  }
  after(delayMs: number, fn: () => void): () => void {
    return this.at(this.now() + delayMs, fn);
  }
}

interface Pending { at: number; seq: number; fn: () => void; cancelled: boolean }

/** A discrete-event clock: `run()` executes events in time order, instantly. */
export class VirtualClock implements Clock {
  private time = 0;
  private seq = 0;
  private heap: Pending[] = [];

  now(): number { return this.time; }

  at(timeMs: number, fn: () => void): () => void {
    const event: Pending = { at: Math.max(this.time, timeMs), seq: this.seq++, fn, cancelled: false };
    this.push(event);
    return () => { event.cancelled = true; };
  }
  after(delayMs: number, fn: () => void): () => void {
    return this.at(this.time + Math.max(0, delayMs), fn);
  }

  /** Runs events until none remain or model time would pass `untilMs`. */
  run(untilMs = Infinity): void {
    while (this.heap.length > 0 && this.heap[0]!.at <= untilMs) {
      const event = this.pop();
      if (event.cancelled) continue;
      this.time = event.at;
      event.fn();
    }
  }

  private less(a: Pending, b: Pending): boolean { return a.at < b.at || (a.at === b.at && a.seq < b.seq); }

  private push(e: Pending): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private pop(): Pending {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
