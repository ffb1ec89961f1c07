// The scheduler's plugins, one table each (in the manner of the Inference Extension's scorer
// tests), and the pure schedule() function that chains them per pool.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_SCHEDULER_CONFIG } from "../../extension-server/src/scheduling/config.ts";
import {
  isFresh, kvCacheScorer, poolSaturation, queueScorer, readyFilter, runningScorer, scoreCandidates, weightedScorers,
  type Candidate, type EndpointLoad, type Reading,
} from "../../extension-server/src/scheduling/plugins.ts";
import { schedule } from "../../extension-server/src/scheduling/scheduler.ts";

const load = (l: Partial<EndpointLoad> = {}): EndpointLoad => ({ waiting: 0, running: 0, kvUsage: 0, runningLoras: [], waitingLoras: [], maxLoras: 0, ...l });
const candidate = (address: string, l: Partial<EndpointLoad> = {}, ready = true, unscraped = false): Candidate => ({ address, load: load(l), ready, unscraped });

describe("ready filter", () => {
  const cases: Array<{ name: string; ready: boolean[]; kept: string[] }> = [
    { name: "all ready: all kept", ready: [true, true, true], kept: ["a", "b", "c"] },
    { name: "some ready: only those", ready: [true, false, true], kept: ["a", "c"] },
    { name: "none ready: all kept, so a broken scrape path cannot black out a pool", ready: [false, false, false], kept: ["a", "b", "c"] },
    { name: "no endpoints", ready: [], kept: [] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const candidates = c.ready.map((r, i) => candidate("abc"[i]!, {}, r));
      assert.deepEqual(readyFilter.filter(candidates).map((x) => x.address), c.kept);
    });
  }
});

describe("freshness", () => {
  const reading = (r: Partial<Reading>): Reading => ({ load: load(), lastSuccess: 1000, consecutiveFailures: 0, ...r });
  const cases: Array<{ name: string; reading: Reading | undefined; now: number; fresh: boolean }> = [
    { name: "just scraped", reading: reading({}), now: 1000, fresh: true },
    { name: "exactly staleAfterMs old", reading: reading({}), now: 1500, fresh: true },
    { name: "older than staleAfterMs", reading: reading({}), now: 1501, fresh: false },
    { name: "the last scrape failed, however recent the success", reading: reading({ consecutiveFailures: 1 }), now: 1000, fresh: false },
    { name: "never read", reading: reading({ load: undefined, lastSuccess: -Infinity }), now: 1000, fresh: false },
    { name: "unknown endpoint", reading: undefined, now: 1000, fresh: false },
  ];
  for (const c of cases) it(c.name, () => assert.equal(isFresh(c.reading, c.now, 500), c.fresh));
});

describe("scorers", () => {
  const cases: Array<{ scorer: typeof queueScorer; loads: Array<Partial<EndpointLoad>>; scores: number[] }> = [
    { scorer: queueScorer, loads: [{ waiting: 0 }, { waiting: 5 }, { waiting: 10 }], scores: [1, 0.5, 0] },
    { scorer: queueScorer, loads: [{ waiting: 3 }, { waiting: 3 }], scores: [1, 1] },
    { scorer: queueScorer, loads: [{ waiting: 7 }], scores: [1] },
    { scorer: kvCacheScorer, loads: [{ kvUsage: 0 }, { kvUsage: 0.25 }, { kvUsage: 1 }], scores: [1, 0.75, 0] },
    { scorer: kvCacheScorer, loads: [{ kvUsage: 0.9 }, { kvUsage: 0.9 }], scores: [0.1, 0.1] },
    { scorer: runningScorer, loads: [{ running: 8 }, { running: 2 }, { running: 4 }], scores: [0, 1, 4 / 6] },
    { scorer: runningScorer, loads: [{ running: 0 }, { running: 0 }], scores: [1, 1] },
  ];
  for (const c of cases) {
    it(`${c.scorer.name}: ${JSON.stringify(c.loads)}`, () => {
      const got = c.scorer.score(c.loads.map((l, i) => candidate(String(i), l)));
      got.forEach((s, i) => assert.ok(Math.abs(s - c.scores[i]!) < 1e-9, `${got} vs ${c.scores}`));
    });
  }

  it("weighs the scorers into 0–1000 scores (all 1000 when every weight is 0)", () => {
    const candidates = [candidate("a", { waiting: 0, kvUsage: 0.5, running: 1 }), candidate("b", { waiting: 4, kvUsage: 0, running: 1 })];
    // a: queue 1, kv 0.5, running 1; b: queue 0, kv 1, running 1. Weights 2, 2, 1.
    assert.deepEqual(scoreCandidates(candidates, weightedScorers({ queue: 2, kvCache: 2, running: 1 })), [800, 600]);
    assert.deepEqual(scoreCandidates(candidates, weightedScorers({ queue: 0, kvCache: 1, running: 0 })), [500, 1000]);
    assert.deepEqual(scoreCandidates(candidates, weightedScorers({ queue: 0, kvCache: 0, running: 0 })), [1000, 1000]);
  });
});

describe("saturation", () => {
  const thresholds = { queueThreshold: 5, kvThreshold: 0.8 };
  const cases: Array<{ name: string; candidates: Candidate[]; saturation: number }> = [
    { name: "idle", candidates: [candidate("a"), candidate("b")], saturation: 0 },
    { name: "queue over its threshold", candidates: [candidate("a", { waiting: 10 })], saturation: 2 },
    { name: "KV over its threshold wins over a short queue", candidates: [candidate("a", { waiting: 1, kvUsage: 0.8 })], saturation: 1 },
    { name: "a failing endpoint counts as saturated", candidates: [candidate("a"), candidate("b", {}, false)], saturation: 0.5 },
    { name: "a not yet scraped endpoint counts as idle", candidates: [candidate("a", { waiting: 5 }), candidate("b", {}, false, true)], saturation: 0.5 },
    { name: "no endpoints: saturated", candidates: [], saturation: 1 },
  ];
  for (const c of cases) it(c.name, () => assert.equal(poolSaturation(c.candidates, thresholds), c.saturation));
});

describe("schedule()", () => {
  const settings = DEFAULT_SCHEDULER_CONFIG;
  const at = (l: Partial<EndpointLoad>, r: Partial<Reading> = {}): Reading => ({ load: load(l), lastSuccess: 0, consecutiveFailures: 0, ...r });

  it("scores each pool's endpoints, leaves failing ones out and rounds to steps of 10", () => {
    const readings = new Map<string, Reading>([
      ["a:1", at({ waiting: 0 })], ["b:1", at({ waiting: 3, kvUsage: 0.333 })], ["c:1", at({}, { consecutiveFailures: 2 })],
      ["d:1", at({ waiting: 50, kvUsage: 1 })],
    ]);
    const s = schedule([{ pool: "p", endpoints: ["a:1", "b:1", "c:1"] }, { pool: "q", endpoints: ["d:1"] }], readings, 100, settings);
    const p = s.get("p")!;
    // b: queue 0 (the longest of a and b), KV 0.667, running 1 (all equal): (2·0 + 2·0.667 + 1) / 5 → 467 → 470.
    assert.deepEqual([...p.endpoints].map(([a, e]) => [a, e.ready, e.score]), [["a:1", true, 1000], ["b:1", true, 470], ["c:1", false, undefined]]);
    assert.equal(p.saturation, Math.round(((0 + 3 / 5 + 1) / 3) * 100) / 100);
    // Alone in its pool, d is compared with nothing but its KV use.
    assert.equal(s.get("q")!.endpoints.get("d:1")!.score, 600);
    assert.equal(s.get("q")!.saturation, 10);
  });

  it("keeps every endpoint when none is fresh, and marks stale ones not ready", () => {
    const readings = new Map<string, Reading>([["a:1", at({})], ["b:1", at({})]]);
    const s = schedule([{ pool: "p", endpoints: ["a:1", "b:1"] }], readings, 10_000, settings).get("p")!;
    assert.deepEqual([...s.endpoints.values()].map((e) => [e.ready, e.score]), [[false, 1000], [false, 1000]]);
    assert.equal(s.saturation, 1);
  });

  it("carries the engine's waiting count and KV use (thousandths) from fresh readings that report them, none from stale ones", () => {
    const readings = new Map<string, Reading>([
      ["a:1", at({ waiting: 7, kvUsage: 0.8126 })],
      ["b:1", at({ waiting: 2, kvUsage: 0.5, reported: { waiting: true, kv: false } })],
      ["c:1", at({ waiting: 3, kvUsage: 0.9 }, { lastSuccess: -10_000 })],
      ["d:1", at({ waiting: 4, kvUsage: 1.7 })],
    ]);
    const p = schedule([{ pool: "p", endpoints: ["a:1", "b:1", "c:1", "d:1"] }], readings, 100, settings).get("p")!;
    const fields = (a: string): unknown => { const e = p.endpoints.get(a)!; return [e.waiting, e.kvPermille]; };
    assert.deepEqual(fields("a:1"), [7, 813]);
    assert.deepEqual(fields("b:1"), [2, undefined], "KV use the engine did not report is not rendered as 0");
    assert.deepEqual(fields("c:1"), [undefined, undefined], "stale: left out of the snapshot, no fields");
    assert.deepEqual(fields("d:1"), [4, 1000], "KV use clamped to 1000");
    // Every reading stale: the ready filter keeps them all, with scores but no engine fields.
    const stale = schedule([{ pool: "p", endpoints: ["a:1"] }], readings, 100_000, settings).get("p")!;
    assert.equal(stale.endpoints.get("a:1")!.ready, false);
    assert.notEqual(stale.endpoints.get("a:1")!.score, undefined);
    assert.deepEqual([stale.endpoints.get("a:1")!.waiting, stale.endpoints.get("a:1")!.kvPermille], [undefined, undefined]);
  });

  it("reports LoRA adapters and a free slot when the endpoint reports LoRA", () => {
    const readings = new Map<string, Reading>([["a:1", at({ runningLoras: ["x", "y"], waitingLoras: ["y", "z"], maxLoras: 2 })], ["b:1", at({ runningLoras: ["x"], maxLoras: 2 })], ["c:1", at({})]]);
    const s = schedule([{ pool: "p", endpoints: ["a:1", "b:1", "c:1"] }], readings, 0, settings).get("p")!;
    assert.deepEqual(s.endpoints.get("a:1")!.loras, ["x", "y", "z"]);
    assert.equal(s.endpoints.get("a:1")!.loraFree, false);
    assert.equal(s.endpoints.get("b:1")!.loraFree, true);
    assert.equal(s.endpoints.get("c:1")!.loras, undefined);
  });
});
