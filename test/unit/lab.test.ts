// The policy lab (bench/lab/): the oracle's engine copies predict exactly, the control path keeps the
// server's push limits, the harness conserves requests and loads, and the baselines behave as the
// proxies they stand for.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BatchingEngine } from "../../sim/batching-engine.ts";
import { VirtualClock } from "../../sim/clock.ts";
import type { EngineRequest } from "../../sim/engine.ts";
import { profileNamed } from "../../sim/step-model.ts";
import { buildWorkload, SEED_WORKLOAD } from "../../bench/workload.ts";
import { loadCore } from "../../bench/lab/core.ts";
import { burstTable, burstTail } from "../../bench/lab/run.ts";
import { ExtensionServer } from "../../bench/lab/control-plane.ts";
import { predictFirstToken, type Arriving } from "../../bench/lab/fork.ts";
import { controlTiming, Lab, runLab, WARMUP_MS, type LabOptions, type LabResult } from "../../bench/lab/lab.ts";
import { epp, infergate, leastRequest, oracle, PrefixIndex, roundRobin } from "../../bench/lab/policies.ts";
import { SHAPES, type Shape } from "../../bench/lab/shapes.ts";
import { replay } from "../../bench/lab/replay.ts";
import { replicaIndex, replicaIps } from "../../bench/replica-addresses.ts";

const words = (n: number, tag: string): string[] => Array.from({ length: n }, (_, i) => `${tag}${i}`);

describe("oracle: engine copies", () => {
  // A scenario on one engine: requests arriving over time (some still in the API-server overhead at
  // the probe), a cache small enough to preempt. Run twice: once predicting a probe request's first
  // token at `probeAt`, once submitting it then; with nothing arriving after it, the two must agree.
  const profile = profileNamed("qwq-32b-4xa10", { kvBlocks: 420 });
  const shared = words(300, "s");
  const scenario = Array.from({ length: 9 }, (_, i) => ({ at: i * 180, tokens: [...shared, ...words(400 + 150 * (i % 4), `r${i}-`)], out: 150 + 120 * (i % 3) }));

  function play(probeAt: number, submitProbe: boolean): { predicted: number; actual: number; preemptions: number } {
    const clock = new VirtualClock();
    const engine = new BatchingEngine(profile, clock);
    const arriving: Arriving[] = [];
    const probe: EngineRequest = { id: "probe", model: "m", promptTokens: [...shared, ...words(700, "p")], maxTokens: 5 };
    let predicted = NaN, actual = NaN;
    for (const [i, r] of scenario.entries()) {
      if (r.at >= probeAt) continue;
      clock.at(r.at, () => {
        const request = { id: String(i), model: "m", promptTokens: r.tokens, maxTokens: r.out };
        arriving.push({ request, entersAt: clock.now() + profile.requestOverheadMs });
        engine.submit(request, { onToken: () => undefined, onFinish: () => undefined });
      });
    }
    clock.at(probeAt, () => {
      const now = clock.now();
      predicted = predictFirstToken(engine, now, arriving.filter((a) => a.entersAt > now), probe, now + profile.requestOverheadMs);
      if (submitProbe) engine.submit(probe, { onToken: (k) => { if (k === 0) actual = clock.now(); }, onFinish: () => undefined });
    });
    clock.run();
    return { predicted, actual, preemptions: engine.stats().preemptions };
  }

  it("predicts the first token exactly when nothing arrives after the request", () => {
    let preempted = 0;
    for (const probeAt of [0, 50, 200, 390, 700, 1013, 1300, 1660, 2500, 4000, 9000]) {
      const { predicted, actual, preemptions } = play(probeAt, true);
      assert.ok(Number.isFinite(predicted), `prediction at ${probeAt}`);
      assert.ok(Math.abs(predicted - actual) < 1e-6, `probe at ${probeAt}: predicted ${predicted}, got ${actual}`);
      if (preemptions > 0) preempted++;
    }
    assert.ok(preempted >= 3, `the cache is small enough to preempt (${preempted} scenarios did)`);
  });

  it("leaves the engine it copies untouched", () => {
    // The same scenario with and without forks taken along the way: every token at the same time.
    const tokenTimes = (fork: boolean): number[] => {
      const clock = new VirtualClock();
      const engine = new BatchingEngine(profile, clock);
      const times: number[] = [];
      for (const [i, r] of scenario.entries()) {
        clock.at(r.at, () => engine.submit({ id: String(i), model: "m", promptTokens: r.tokens, maxTokens: r.out }, { onToken: () => times.push(clock.now()), onFinish: () => undefined }));
      }
      if (fork) for (const t of [300, 900, 1500]) clock.at(t, () => void predictFirstToken(engine, clock.now(), [], { id: "x", model: "m", promptTokens: words(500, "x"), maxTokens: 3 }, clock.now() + 100));
      clock.run();
      return times;
    };
    assert.deepEqual(tokenTimes(true), tokenTimes(false));
  });
});

const tinyShape = (over: Partial<Shape> = {}): Shape => ({
  ...SHAPES.seed!, name: "tiny-seed", numPrompts: 120, arrival: { kind: "closed", concurrency: 15 },
  build: (seed, n) => buildWorkload({ ...SEED_WORKLOAD, numPrompts: n, seed, prefixLen: 100, inputLen: 400, outputLen: 60 }),
  ...over,
});
const options = (shape: Shape, seed = 1): LabOptions => ({ shape, seed, workers: 2, timing: controlTiming(1) });

describe("lab harness", () => {
  it("completes every request once, under every policy, and leaves no load behind", async () => {
    const core = await loadCore();
    for (const factory of [roundRobin, leastRequest, epp, infergate(core), oracle]) {
      const lab = new Lab(options(tinyShape()));
      const { records, summary } = lab.run(factory(lab, 1), (await import("../../bench/lab/lab.ts")).labRequests(tinyShape(), 1));
      assert.equal(summary.completed, 120);
      assert.deepEqual(records.map((r) => r.index), Array.from({ length: 120 }, (_, i) => i));
      assert.ok(records.every((r) => r.ttftMs > 0 && r.outputTokens > 0));
      for (const l of lab.local[0]!) assert.deepEqual(l, { pending: 0, inflight: 0 });
      assert.ok(lab.engines.every((e) => e.usedBlocks === 0));
    }
  });

  it("sends Poisson arrivals at their times, whatever is in flight", () => {
    const shape = tinyShape({ arrival: { kind: "poisson", ratePerS: 2 } });
    const r = runLab(roundRobin, options(shape));
    const starts = r.records.map((x) => x.startMs);
    assert.ok(starts.every((t, i) => i === 0 || t >= starts[i - 1]!));
    // 120 arrivals at 2/s: about 60 s of arrivals.
    assert.ok(starts.at(-1)! > 40_000 && starts.at(-1)! < 80_000, String(starts.at(-1)));
  });

  it("round robin spreads requests evenly; least-request follows in-flight counts", () => {
    const rr = runLab(roundRobin, options(tinyShape()));
    assert.ok(Math.max(...rr.perEngine) - Math.min(...rr.perEngine) <= 6, rr.perEngine.join(","));
    const lr = runLab(leastRequest, options(tinyShape()));
    assert.equal(lr.perEngine.reduce((a, b) => a + b, 0), 120);
  });

  it("with pinned connections, a request's worker is its connection's: shares follow the pinning", () => {
    // A policy that only records the worker each request arrived on.
    const workersSeen = (connections?: LabOptions["connections"]): number[] => {
      const seen = [0, 0];
      runLab(() => ({ name: "spy", decisionLatencyMs: 0, route: ({ worker }) => { seen[worker]!++; return 0; } }), { ...options(tinyShape()), ...(connections ? { connections } : {}) });
      return seen;
    };
    const even = workersSeen();
    assert.ok(even[0]! > 40 && even[1]! > 40, `an even draw uses both workers: ${even}`);
    // One connection: every request on its one worker. Several: each pinning gives its own split,
    // and the same seed the same split.
    for (let seed = 0; seed < 4; seed++) assert.ok(workersSeen({ count: 1, seed }).includes(120), `seed ${seed}: one worker only`);
    const splits = new Set(Array.from({ length: 12 }, (_, seed) => workersSeen({ count: 8, seed })[0]));
    assert.ok(splits.size >= 3, `pinnings differ in their split: ${[...splits]}`);
    assert.deepEqual(workersSeen({ count: 8, seed: 3 }), workersSeen({ count: 8, seed: 3 }));
  });

  it("a worker seed redraws the workers requests arrive on, and only that", () => {
    const run = (workerSeed?: number): { workers: number[]; starts: number[] } => {
      const workers: number[] = [];
      const r = runLab(() => ({ name: "spy", decisionLatencyMs: 0, route: ({ worker }) => { workers.push(worker); return 0; } }), { ...options(tinyShape()), ...(workerSeed === undefined ? {} : { workerSeed }) });
      return { workers, starts: r.records.map((x) => x.startMs) };
    };
    const plain = run();
    assert.deepEqual(run().workers, plain.workers, "without it, a workload seed always gives the same workers");
    const redrawn = [1, 2, 3].map((w) => run(w));
    for (const r of redrawn) {
      assert.notDeepEqual(r.workers, plain.workers);
      assert.deepEqual(r.starts, plain.starts, "the requests and their times stay the same");
    }
    assert.deepEqual(run(2).workers, redrawn[1]!.workers);
  });

  it("round robin's seed chooses only each worker's starting host (what bench/lab/rr-chance.ts redraws)", () => {
    const lab = new Lab(options(tinyShape()));
    const n = lab.engines.length;
    const starts = new Set<string>();
    for (let seed = 0; seed < 20; seed++) {
      const policy = roundRobin(lab, seed);
      const route = (worker: number): number => policy.route({ proxy: 0, worker } as Parameters<typeof policy.route>[0]);
      const picks = [0, 1].map((w) => Array.from({ length: 2 * n }, () => route(w)));
      for (const p of picks) p.forEach((e, i) => assert.equal(e, (p[0]! + i) % n, `seed ${seed}: a worker cycles through every engine in order`));
      starts.add(picks.map((p) => p[0]).join(","));
    }
    assert.ok(starts.size >= 5, `20 seeds give varied starting hosts (${starts.size} distinct)`);
  });
});

describe("lab control path", () => {
  it("pushes at most once per push interval, only on change, and delivers after the push delay", () => {
    const timing = { ...controlTiming(1), pushMinIntervalMs: 40, pushDelayMs: 7 };
    const lab = new Lab({ ...options(tinyShape()), timing });
    const pushedAt: number[] = [];
    const deliveredAt: number[] = [];
    const texts: string[] = [];
    const server = new ExtensionServer(lab, timing, 3, (text) => { deliveredAt.push(lab.clock.now()); texts.push(text); });
    const origPush = (server as unknown as { push: () => void }).push.bind(server);
    (server as unknown as { push: () => void }).push = () => { const before = server.pushes; origPush(); if (server.pushes > before) pushedAt.push(lab.clock.now()); };
    // Load one engine after a while, so scores change.
    lab.clock.at(300, () => lab.engines[2]!.submit({ id: "x", model: "m", promptTokens: words(3000, "x"), maxTokens: 400 }, { onToken: () => undefined, onFinish: () => { lab.done = true; } }));
    lab.clock.run(30_000);
    lab.done = true;
    assert.ok(server.pushes >= 3, `pushes ${server.pushes}`);
    for (let i = 1; i < pushedAt.length; i++) assert.ok(pushedAt[i]! - pushedAt[i - 1]! >= 40 - 1e-9, `push gap ${pushedAt[i]! - pushedAt[i - 1]!}`);
    assert.equal(new Set(texts.map((t) => t.replace(/^version \d+$/m, ""))).size, texts.length, "every push changed the snapshot");
    assert.match(texts.at(-1)!, /^infergate-snapshot 1\nversion \d+\n/);
    assert.match(texts.find((t) => /endpoint 10\.0\.0\.3:8000 [0-8]\d\d\b/.test(t)) ?? "", /endpoint 10\.0\.0\.3:8000/, "the loaded engine's score fell");
    assert.ok(deliveredAt.length === pushedAt.length + 1, "the first (configuration) push is delivered too");
  });
});

describe("lab EPP model", () => {
  it("hashes 64-character blocks of the messages and matches the longest prefix per server", () => {
    const a = PrefixIndex.hashes("x".repeat(64 * 5 + 10), "m");
    assert.equal(a.length, 5);
    assert.equal(PrefixIndex.hashes("x".repeat(64 * 300), "m").length, 256, "at most 256 blocks");
    const b = PrefixIndex.hashes("x".repeat(64 * 3) + "y".repeat(128), "m");
    const index = new PrefixIndex(3, 1000);
    index.add(a, 1);
    assert.deepEqual(index.match(b), [0, 3, 0]);
    const small = new PrefixIndex(2, 4);
    small.add(a, 0);
    assert.deepEqual(small.match(a), [0, 0], "an LRU of 4 blocks keeps only the last 4: the first is gone");
  });

  it("sends a synchronized burst that shares a prefix to one replica: its metrics cannot have moved yet", () => {
    const shape = tinyShape({ numPrompts: 40, arrival: { kind: "closed", concurrency: 30 } });
    const r = runLab(epp, options(shape));
    const burst = r.records.filter((x) => x.index < 30).map((x) => x.engine);
    assert.equal(new Set(burst).size, 1, burst.join(","));
  });
});

describe("lab infergate", () => {
  it("routes with the compiled core and its pushed snapshots", async () => {
    const core = await loadCore();
    const distinct = tinyShape({ build: (seed, n) => buildWorkload({ ...SEED_WORKLOAD, numPrompts: n, seed, prefixLen: 0, inputLen: 400, outputLen: 60 }) });
    for (const engineFields of [false, true]) {
      const r = runLab(infergate(core, { engineFields }), options(distinct));
      assert.equal(r.summary.completed, 120);
      assert.equal(r.stats.nacks, 0);
      assert.ok(r.stats.pushes! > 1);
      assert.ok(r.perEngine.every((n) => n >= 10), r.perEngine.join(","));
      assert.equal(r.stats.affinityShare, 0, "no prompt shares a prefix with another");
    }
    // Prompts that share their first 256 bytes: after the first, each goes where the prefix went.
    const shared = runLab(infergate(core, { engineFields: true }), options(tinyShape()));
    assert.ok(shared.stats.affinityShare! > 0.9, String(shared.stats.affinityShare));
    assert.ok(shared.records[0]!.startMs === 0 && WARMUP_MS > 0);
  });

  it("pushes the filter tuning it is given on top of the server's", async () => {
    const core = await loadCore();
    const off = runLab(infergate(core, { engineFields: true, tuning: { "affinity-bytes": 0 } }), options(tinyShape()));
    assert.equal(off.stats.affinityShare, 0);
  });
});

describe("lab report: where the slowest requests come from", () => {
  const result = (policy: string, seed: number, ttft: (index: number) => number): LabResult => ({
    policy, shape: "s", seed, wallS: 0, preemptions: 0, recomputedTokens: 0, prefixHitRate: 0, perEngine: [], stats: {},
    summary: undefined as never,
    records: Array.from({ length: 200 }, (_, index) => ({ index, ok: true, shed: false, status: 200, startMs: 0, ttftMs: ttft(index), itlMs: [], e2eMs: 0, inputTokens: 1, outputTokens: 1, engine: 0, affinity: false })),
  });

  it("counts the slowest 1% that belong to the start-up burst and takes the P99 after it", () => {
    // 200 requests, a burst of 10: three burst requests at 5 s, one later request at 6 s.
    const r = result("infergate", 0, (i) => (i < 3 ? 5000 : i === 50 ? 6000 : 100));
    const t = burstTail(r, 10);
    assert.deepEqual({ from: t.slowestFromBurst, of: t.slowest }, { from: 1, of: 2 });
    assert.equal(t.burstMedian, 100, "three of ten burst requests are slow");
    assert.equal(burstTail(result("infergate", 0, (i) => (i < 6 ? 5000 : 100)), 10).burstMedian, 5000);
    assert.equal(t.afterP99, 100, "one slow request in 190 is below their P99");
    assert.ok(burstTail(result("infergate", 0, (i) => (i >= 50 && i < 55 ? 6000 : 100)), 10).afterP99 > 1000);
    const all = burstTail(result("oracle", 0, (i) => (i < 10 ? 9000 : 100)), 10);
    assert.equal(all.slowestFromBurst, 2);
    assert.equal(all.afterP99, 100);
  });

  it("tabulates it per policy, with the after-burst P99 against round robin's of the same seed", () => {
    const table = burstTable([result("round-robin", 0, (i) => (i % 20 === 0 ? 4000 : 200)), result("infergate", 0, (i) => (i < 10 ? 9000 : 100))], ["round-robin", "infergate"], 10);
    const row = table.split("\n").find((l) => l.startsWith("| infergate"))!;
    assert.match(row, /\| 2\.00 .*of 2 \|/);
    assert.match(row, /\| 0\.0\d+ \|$/, row); // 100 ms against round robin's 4000 ms P99 after the burst
  });
});

describe("lab replay of a benchmark run's routing (bench/lab/replay.ts)", () => {
  // A lab run's own records stand in for a benchmark run's: the same engine per request, written
  // as the benchmark's replica addresses.
  const asRun = (r: LabResult): { index: number; servedBy?: string }[] => r.records.map((x) => ({ index: x.index, servedBy: `127.0.3.${x.engine + 1}:8000` }));

  it("reproduces the run it replays, request by request", async () => {
    const core = await loadCore();
    for (const factory of [leastRequest, infergate(core)]) {
      const original = runLab(factory, options(tinyShape()));
      const replayed = runLab(replay(asRun(original)), options(tinyShape()));
      assert.deepEqual(replayed.records.map((x) => x.engine), original.records.map((x) => x.engine));
      assert.deepEqual(replayed.records.map((x) => x.ttftMs), original.records.map((x) => x.ttftMs));
    }
  });

  it("changes the figures when the assignment changes", () => {
    const original = runLab(leastRequest, options(tinyShape()));
    const everyoneOnOne = runLab(replay(asRun(original).map((r) => ({ ...r, servedBy: "127.0.3.1:8000" }))), options(tinyShape()));
    assert.equal(everyoneOnOne.perEngine[0], 120);
    assert.ok(everyoneOnOne.summary.ttft.mean > original.summary.ttft.mean);
    // A request no replica served in the run fails in the replay too.
    const unserved = runLab(replay(asRun(original).map((r) => (r.index === 3 ? { index: 3 } : r))), options(tinyShape()));
    assert.equal(unserved.records[3]!.status, 503);
    assert.equal(unserved.summary.completed, 119);
  });

  it("refuses an address that is not a benchmark replica, and a request the run does not have", () => {
    assert.equal(replicaIndex("127.0.3.5:8000"), 4);
    assert.deepEqual(replicaIps(3).map((ip) => replicaIndex(`${ip}:8000`)), [0, 1, 2], "the inverse of where the benchmark starts them");
    assert.throws(() => replicaIndex("10.0.0.1:8000"), /not a benchmark replica address/);
    assert.throws(() => runLab(replay([{ index: 0, servedBy: "127.0.3.1:8000" }]), options(tinyShape())), /request 1 is not in the run/);
    assert.throws(() => runLab(replay([{ index: 0, servedBy: "127.0.3.9:8000" }]), options(tinyShape())), /the run used replica 9; the lab has 5/);
  });
});
