// What-if copies of a simulated engine, for the oracle: the engine's exact state at this instant
// (block pool and prefix cache, running and waiting requests, the step in progress, requests still
// in the API server's overhead), run forward on a private clock with one more request, to see when
// that request's first token would come. Nothing after it arrives in the copy: the oracle knows the
// present exactly and the future not at all.
//
// The engine (sim/batching-engine.ts) has no fork of its own, so this reads its private fields by
// name. test/unit/lab.test.ts pins the copy: a fork's prediction equals the TTFT the real engine
// then gives the request when nothing else arrives, so a change in the engine that this copy does
// not follow fails that test rather than skewing the oracle.
import { BatchingEngine, type Seq as SeqState } from "../../sim/batching-engine.ts";
import { BlockPool } from "../../sim/kv-cache.ts";
import type { Clock } from "../../sim/clock.ts";
import type { EngineRequest, TokenSink } from "../../sim/engine.ts";
import type { StepProfile } from "../../sim/step-model.ts";

interface EngineState {
  profile: StepProfile;
  clock: Clock;
  pool: BlockPool;
  waiting: SeqState[];
  running: SeqState[];
  stepping: boolean;
  kickPending: boolean;
  lastStepEnd: number;
  closed: boolean;
  nonces: number;
  counters: Record<string, number>;
  cancelTimers: Set<() => void>;
  blockSize: number;
  kick(continuing?: boolean): void;
  complete(batch: Array<{ seq: SeqState; tokens: number; prefill: boolean }>): void;
}

interface PoolState {
  capacity: number;
  refCount: Int32Array;
  hashOf: Float64Array;
  prev: Int32Array;
  next: Int32Array;
  sameHash: Int32Array;
  byHash: Map<number, number>;
  head: number;
  tail: number;
  free: number;
}

/** A discrete-event clock that starts at a given time and stops when told. */
export class ForkClock implements Clock {
  private heap: Array<{ at: number; seq: number; fn: () => void; cancelled: boolean }> = [];
  private seq = 0;
  stopped = false;
  constructor(private time: number) {}
  now(): number { return this.time; }
  at(timeMs: number, fn: () => void): () => void {
    const e = { at: Math.max(this.time, timeMs), seq: this.seq++, fn, cancelled: false };
    const h = this.heap;
    h.push(e);
    for (let i = h.length - 1; i > 0;) {
      const p = (i - 1) >> 1;
      if (h[p]!.at < e.at || (h[p]!.at === e.at && h[p]!.seq < e.seq)) break;
      h[i] = h[p]!;
      h[p] = e;
      i = p;
    }
    return () => { e.cancelled = true; };
  }
  after(delayMs: number, fn: () => void): () => void { return this.at(this.time + Math.max(0, delayMs), fn); }
  /** Runs events in order until `stopped`, none are left, or time would pass `untilMs`. */
  run(untilMs: number): void {
    const h = this.heap;
    while (!this.stopped && h.length > 0 && h[0]!.at <= untilMs) {
      const top = h[0]!;
      const last = h.pop()!;
      if (h.length > 0) {
        h[0] = last;
        for (let i = 0; ;) {
          const l = 2 * i + 1, r = l + 1;
          let m = i;
          const less = (a: typeof top, b: typeof top): boolean => a.at < b.at || (a.at === b.at && a.seq < b.seq);
          if (l < h.length && less(h[l]!, h[m]!)) m = l;
          if (r < h.length && less(h[r]!, h[m]!)) m = r;
          if (m === i) break;
          [h[i], h[m]] = [h[m]!, h[i]!];
          i = m;
        }
      }
      if (top.cancelled) continue;
      this.time = top.at;
      top.fn();
    }
  }
}

function clonePool(p: BlockPool): BlockPool {
  const s = p as unknown as PoolState;
  const c = Object.create(BlockPool.prototype) as PoolState;
  Object.assign(c, {
    capacity: s.capacity, refCount: s.refCount.slice(), hashOf: s.hashOf.slice(), prev: s.prev.slice(), next: s.next.slice(),
    sameHash: s.sameHash.slice(), byHash: new Map(s.byHash), head: s.head, tail: s.tail, free: s.free,
  });
  return c as unknown as BlockPool;
}

const SILENT: TokenSink = { onToken: () => undefined, onFinish: () => undefined, onError: () => undefined };

/** A request already submitted to the engine but still in its API-server overhead: it joins the
 * waiting queue at `entersAt`. */
export interface Arriving { request: EngineRequest; entersAt: number }

/**
 * A copy of `engine` on `clock` (which must read the same time as the engine's clock). Requests in
 * it are silent. The copy's own submissions skip the request overhead (`submitAt` times them).
 */
export function forkEngine(engine: BatchingEngine, clock: ForkClock, arriving: Arriving[]): BatchingEngine {
  const s = engine as unknown as EngineState;
  const copy = (q: SeqState): SeqState => ({ ...q, sink: SILENT, hashes: q.hashes.slice(), blocks: q.blocks.slice() });
  const f = Object.create(BatchingEngine.prototype) as EngineState;
  Object.assign(f, {
    profile: { ...s.profile, requestOverheadMs: 0 }, clock, pool: clonePool(s.pool),
    waiting: s.waiting.map(copy), running: s.running.map(copy), stepping: s.stepping, kickPending: false,
    lastStepEnd: s.lastStepEnd, closed: false, nonces: s.nonces, counters: { ...s.counters }, cancelTimers: new Set(), blockSize: s.blockSize,
  });
  if (s.stepping) {
    // The step in progress: every running request whose context is computed samples a token when it
    // ends (complete() skips the others, as the real batch would).
    const batch = f.running.map((seq) => ({ seq, tokens: 0, prefill: false }));
    clock.at(s.lastStepEnd, () => {
      f.stepping = false;
      f.complete(batch);
      if (f.running.length > 0 || f.waiting.length > 0) f.kick(true);
    });
  } else if (s.kickPending) {
    clock.after(0, () => f.kick());
  }
  const copyEngine = f as unknown as BatchingEngine;
  for (const a of arriving) clock.at(a.entersAt, () => void copyEngine.submit(a.request, SILENT));
  return copyEngine;
}

/**
 * When `request`, entering the engine's waiting queue at `entersAt`, would get its first token if
 * nothing else arrived after it (model time; Infinity if not within `horizonMs`).
 */
export function predictFirstToken(engine: BatchingEngine, now: number, arriving: Arriving[], request: EngineRequest, entersAt: number, horizonMs = 3_600_000): number {
  const clock = new ForkClock(now);
  const copy = forkEngine(engine, clock, arriving);
  let first = Infinity;
  clock.at(entersAt, () => void copy.submit(request, {
    onToken: (i) => { if (i === 0) { first = clock.now(); clock.stopped = true; } },
    onFinish: () => undefined,
    onError: () => { clock.stopped = true; },
  }));
  clock.run(now + horizonMs);
  return first;
}
