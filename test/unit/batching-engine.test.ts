// Invariants of the simulated vLLM engine, run on the discrete-event clock.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BatchingEngine } from "../../sim/batching-engine.ts";
import { VirtualClock } from "../../sim/clock.ts";
import type { EngineRequest } from "../../sim/engine.ts";
import { blockHashes, BlockPool } from "../../sim/kv-cache.ts";
import { profileNamed, stepTimeMs, type StepProfile } from "../../sim/step-model.ts";

interface Trace { tokens: number[]; finishedAt?: number; error?: string }

function words(n: number, prefix = "w"): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${i}`);
}

function harness(profile: StepProfile) {
  const clock = new VirtualClock();
  const engine = new BatchingEngine(profile, clock);
  const traces = new Map<string, Trace>();
  const checks: Array<() => void> = [];
  const submit = (req: Partial<EngineRequest> & { id: string; promptTokens: string[]; maxTokens: number }, at = 0): Trace => {
    const trace: Trace = { tokens: [] };
    traces.set(req.id, trace);
    clock.after(at, () => engine.submit({ model: "m", ...req }, {
      onToken: (i) => {
        assert.equal(i, trace.tokens.length, "tokens arrive in order");
        trace.tokens.push(clock.now());
        for (const check of checks) check();
      },
      onFinish: () => { trace.finishedAt = clock.now(); },
      onError: (m) => { trace.error = m; },
    }));
    return trace;
  };
  return { clock, engine, traces, submit, checks };
}

describe("batching engine", () => {
  it("follows the step-time formula for a lone request", () => {
    const p = profileNamed("tiny", { requestOverheadMs: 7 });
    const { clock, submit } = harness(p);
    const t = submit({ id: "a", promptTokens: words(100), maxTokens: 3 });
    clock.run();
    const prefill = stepTimeMs(p, { runningSeqs: 1, contextTokens: 100, prefillTokens: 100 });
    const close = (actual: number, expected: number, what: string) => assert.ok(Math.abs(actual - expected) < 1e-9, `${what}: ${actual} vs ${expected}`);
    close(t.tokens[0]!, 7 + prefill, "TTFT = overhead + one prefill step");
    close(t.tokens[1]! - t.tokens[0]!, stepTimeMs(p, { runningSeqs: 1, contextTokens: 101, prefillTokens: 0 }), "first decode step");
    close(t.tokens[2]! - t.tokens[1]!, stepTimeMs(p, { runningSeqs: 1, contextTokens: 102, prefillTokens: 0 }), "second decode step");
    assert.equal(t.finishedAt, t.tokens[2]);
  });

  it("chunks a long prefill by the token budget", () => {
    const p = profileNamed("tiny", { maxNumBatchedTokens: 64, kvBlocks: 1000 });
    const { clock, engine, submit } = harness(p);
    const t = submit({ id: "a", promptTokens: words(200), maxTokens: 1 });
    clock.run();
    assert.equal(engine.steps, 4, "200 prompt tokens in chunks of 64");
    assert.equal(t.tokens.length, 1);
  });

  it("admits in arrival order", () => {
    const p = profileNamed("tiny", { maxNumSeqs: 1 });
    const { clock, traces, submit } = harness(p);
    for (let i = 0; i < 5; i++) submit({ id: `r${i}`, promptTokens: words(10, `p${i}`), maxTokens: 3 }, i * 0.001);
    clock.run();
    const order = [...traces.entries()].sort((a, b) => a[1].finishedAt! - b[1].finishedAt!).map(([id]) => id);
    assert.deepEqual(order, ["r0", "r1", "r2", "r3", "r4"]);
  });

  it("a prefix-cache hit shortens prefill", () => {
    const p = profileNamed("tiny", { kvBlocks: 1000, maxNumBatchedTokens: 2048 });
    const { clock, engine, submit } = harness(p);
    const shared = words(320, "shared");
    const first = submit({ id: "a", promptTokens: [...shared, "x"], maxTokens: 2 });
    const second = submit({ id: "b", promptTokens: [...shared, "y"], maxTokens: 2 }, 1000);
    clock.run();
    const ttft1 = first.tokens[0]!;
    const ttft2 = second.tokens[0]! - 1000;
    assert.ok(ttft2 < ttft1, `hit ${ttft2} ms vs miss ${ttft1} ms`);
    const s = engine.stats();
    assert.equal(s.prefixHits, 320, "20 full blocks of the shared prefix were reused");
    assert.equal(s.prefixQueries, 642);
  });

  it("never uses more blocks or sequences than it has, and preempts and recomputes when KV runs out", () => {
    const p = profileNamed("tiny", { kvBlocks: 64, maxNumSeqs: 8, maxNumBatchedTokens: 256 });
    const { clock, engine, traces, submit, checks } = harness(p);
    checks.push(() => {
      assert.ok(engine.usedBlocks <= p.kvBlocks);
      assert.ok(engine.stats().running <= p.maxNumSeqs);
    });
    // 6 × (200 prompt + 300 output) tokens = 3,000 tokens against a 1,024-token cache.
    for (let i = 0; i < 6; i++) submit({ id: `r${i}`, promptTokens: words(200, `p${i}`), maxTokens: 300 });
    clock.run();
    assert.ok(engine.stats().preemptions > 0, "the cache was too small for all at once");
    for (const [id, t] of traces) {
      assert.equal(t.tokens.length, 300, `${id} got every token despite preemption`);
      assert.ok(t.finishedAt !== undefined);
    }
    assert.equal(engine.usedBlocks, 0, "everything released at the end");
    assert.equal(engine.stats().running + engine.stats().waiting, 0);
  });

  it("fails a prompt that can never fit instead of hanging", () => {
    const p = profileNamed("tiny", { kvBlocks: 4 });
    const { clock, submit } = harness(p);
    const t = submit({ id: "huge", promptTokens: words(100), maxTokens: 1 });
    const ok = submit({ id: "ok", promptTokens: words(10), maxTokens: 2 });
    clock.run();
    assert.match(t.error ?? "", /does not fit in the KV cache/);
    assert.equal(ok.tokens.length, 2);
  });

  it("runs at most max_loras adapters at once", () => {
    const p = profileNamed("tiny", { maxLoras: 2, kvBlocks: 1000 });
    const { clock, engine, traces, submit, checks } = harness(p);
    checks.push(() => assert.ok(engine.stats().runningLoras.length <= 2, engine.stats().runningLoras.join(",")));
    for (let i = 0; i < 6; i++) submit({ id: `r${i}`, promptTokens: words(20, `p${i}`), maxTokens: 5, lora: `adapter-${i % 3}` });
    clock.run();
    for (const t of traces.values()) assert.equal(t.tokens.length, 5);
  });

  it("frees a cancelled request's blocks", () => {
    const p = profileNamed("tiny", { kvBlocks: 100 });
    const clock = new VirtualClock();
    const engine = new BatchingEngine(p, clock);
    let tokens = 0;
    const cancel = engine.submit({ id: "a", model: "m", promptTokens: words(50), maxTokens: 1000 }, { onToken: () => tokens++, onFinish: () => undefined });
    clock.run(100);
    assert.ok(engine.usedBlocks > 0 && tokens > 0);
    cancel();
    clock.run();
    assert.equal(engine.usedBlocks, 0);
  });

  it("admits a waiting request when its first chunk fits, not its whole prompt (as vLLM of the seed's time)", () => {
    // 15 usable blocks. A holds 10; B's 200-token prompt needs 13 blocks in all, but its first
    // 63-token chunk needs 4, which are free.
    const p = profileNamed("tiny", { kvBlocks: 16, maxNumBatchedTokens: 64, maxNumSeqs: 8 });
    const run = (admitFullPrompt: boolean) => {
      const { clock, engine, submit } = harness({ ...p, admitFullPrompt });
      const a = submit({ id: "a", promptTokens: words(150, "a"), maxTokens: 40 });
      submit({ id: "b", promptTokens: words(200, "b"), maxTokens: 2 }, 50);
      let admittedWith: number | undefined;
      for (let t = 50; t < 2000 && admittedWith === undefined && a.finishedAt === undefined; t += 0.25) {
        clock.run(t);
        if (engine.queues().running.includes("b") && a.finishedAt === undefined) admittedWith = engine.blockPool.freeBlocks;
      }
      clock.run();
      return { admittedWith };
    };
    const chunked = run(false);
    assert.ok(chunked.admittedWith !== undefined, "b was admitted while a was still running");
    const full = run(true);
    assert.equal(full.admittedWith, undefined, "with full-prompt admission b waits until a is done");
  });

  it("stops admitting at the head of the waiting queue when its chunk does not fit", () => {
    // 15 usable blocks: a takes 12, so big (needs 4 for its first chunk) blocks, and small behind it
    // (1 block) must wait too.
    const p = profileNamed("tiny", { kvBlocks: 16, maxNumBatchedTokens: 256, maxNumSeqs: 8 });
    const { clock, engine, submit } = harness(p);
    const a = submit({ id: "a", promptTokens: words(190, "a"), maxTokens: 30 });
    submit({ id: "big", promptTokens: words(64, "big"), maxTokens: 2 }, 1);
    const small = submit({ id: "small", promptTokens: words(8, "small"), maxTokens: 2 }, 2);
    clock.run(20);
    assert.deepEqual(engine.queues(), { running: ["a"], waiting: ["big", "small"] });
    clock.run();
    assert.ok(small.tokens[0]! > a.finishedAt!, "small got its first token only after a freed its blocks");
  });

  it("preempts the last running request, frees its blocks tail-first, requeues it at the front and admits nothing that step", () => {
    // 12 usable blocks. a, b, c (63-token prompts) take 4 each; d waits. When a's context crosses
    // 64 tokens it needs a 5th block: c, the last admitted, is preempted.
    const p = profileNamed("tiny", { kvBlocks: 13, maxNumBatchedTokens: 256, maxNumSeqs: 8 });
    const { clock, engine, traces, submit } = harness(p);
    const prompts = { a: words(63, "a"), b: words(63, "b"), c: words(63, "c") };
    for (const [id, promptTokens] of Object.entries(prompts)) submit({ id, promptTokens, maxTokens: 6 });
    submit({ id: "d", promptTokens: words(8, "d"), maxTokens: 2 }, 1);
    let t = 0;
    while (engine.stats().preemptions === 0 && t < 1000) clock.run((t += 0.25));
    assert.equal(engine.stats().preemptions, 1);
    assert.deepEqual(engine.queues(), { running: ["a", "b"], waiting: ["c", "d"] }, "c goes back in front of d");
    // a and b took c's last two blocks; c's first two stay cached at the head of the free queue,
    // in the order they will be evicted (c's second block before its first).
    const cHashes = blockHashes(prompts.c, 16);
    const pool = engine.blockPool;
    assert.deepEqual(pool.freeQueue().map((b) => pool.hashOfBlock(b)), [cHashes[1], cHashes[0]]);
    assert.ok(pool.freeBlocks >= 1 && engine.queues().waiting.includes("d"), "d would fit, but nothing is admitted in a step that preempted");
    clock.run();
    for (const [id, trace] of traces) assert.equal(trace.tokens.length, id === "d" ? 2 : 6, id);
    assert.equal(engine.usedBlocks, 0);
  });

  it("a preempted request finds its own surviving blocks, generated tokens included, and recomputes only the rest", () => {
    const p = profileNamed("tiny", { kvBlocks: 41, maxNumBatchedTokens: 512, maxNumSeqs: 8 });
    const { clock, engine, traces, submit } = harness(p);
    // x and y (150-token prompts) fill the 40 usable blocks at about 320 tokens each; y, admitted
    // last, is preempted with ~170 generated tokens. x needs only two more blocks to finish, taken
    // from the head of the free queue: y's last blocks. y then hits the rest, its own prompt and
    // generated blocks.
    submit({ id: "x", promptTokens: words(150, "x"), maxTokens: 200 });
    submit({ id: "y", promptTokens: words(150, "y"), maxTokens: 320 });
    let contextAtPreemption = 0;
    for (let t = 0; t < 100_000 && engine.stats().preemptions === 0; t += 1) {
      clock.run(t);
      contextAtPreemption = 150 + traces.get("y")!.tokens.length;
    }
    clock.run();
    assert.equal(engine.stats().preemptions, 1);
    assert.equal(traces.get("x")!.tokens.length, 200);
    assert.equal(traces.get("y")!.tokens.length, 320);
    assert.ok(contextAtPreemption > 300, `y had ${contextAtPreemption} tokens of context`);
    assert.ok(engine.recomputedTokens > 0 && engine.recomputedTokens <= 3 * 16, `recomputed ${engine.recomputedTokens} of them`);
  });

  it("shares prefix blocks between running requests, including ones scheduled in the same step", () => {
    const p = profileNamed("tiny", { kvBlocks: 200, maxNumBatchedTokens: 2048, maxNumSeqs: 8 });
    const { clock, engine, submit } = harness(p);
    const shared = words(160, "shared");
    submit({ id: "a", promptTokens: [...shared, ...words(20, "a")], maxTokens: 50 });
    submit({ id: "b", promptTokens: [...shared, ...words(20, "b")], maxTokens: 50 });
    clock.run(1);
    // 10 shared blocks once, plus 2 of each one's own: 14, not 24.
    assert.equal(engine.usedBlocks, 14);
    assert.equal(engine.stats().prefixHits, 160, "b hit the blocks a was scheduled to fill in the same step");
    clock.run();
  });

  it("keeps different LoRA adapters' blocks apart", () => {
    const p = profileNamed("tiny", { kvBlocks: 200, maxNumBatchedTokens: 2048, maxNumSeqs: 8 });
    const { clock, engine, submit } = harness(p);
    const prompt = words(64, "same");
    submit({ id: "a", promptTokens: prompt, maxTokens: 2, lora: "one" });
    submit({ id: "b", promptTokens: prompt, maxTokens: 2, lora: "two" }, 100);
    submit({ id: "c", promptTokens: prompt, maxTokens: 2, lora: "one" }, 200);
    clock.run();
    assert.equal(engine.stats().prefixHits, 48, "only c (same adapter as a) hit, 3 of its 4 blocks");
  });
});

describe("block pool", () => {
  it("evicts in the order blocks were freed, and a hit takes a free block out of the queue", () => {
    const pool = new BlockPool(9); // 8 usable
    const a = pool.allocate(4);
    const b = pool.allocate(4);
    a.forEach((block, i) => pool.cache(block, 100 + i));
    pool.release([...a].reverse()); // a request frees its blocks last-first
    assert.deepEqual(pool.freeQueue(), [a[3], a[2], a[1], a[0]]);
    assert.deepEqual(pool.lookupPrefix([100, 101, 999, 103]), [a[0], a[1]], "the hit stops at the first miss");
    assert.equal(pool.countEvictable([a[0]!, a[1]!]), 2);
    pool.touch([a[0]!, a[1]!]);
    assert.deepEqual(pool.freeQueue(), [a[3], a[2]]);
    const fresh = pool.allocate(1);
    assert.deepEqual(fresh, [a[3]], "the head of the queue is reused first");
    assert.equal(pool.hashOfBlock(a[3]!), undefined, "and loses its cached hash");
    assert.deepEqual(pool.lookupPrefix([100, 101, 102, 103]), [a[0], a[1], a[2]]);
    pool.release(b);
    assert.equal(pool.usedBlocks, 3);
    assert.throws(() => pool.allocate(10));
  });

  it("keeps a duplicate block findable when the first holder of a hash is evicted", () => {
    const pool = new BlockPool(4); // 3 usable
    const [x, y] = pool.allocate(2);
    pool.cache(x!, 7);
    pool.cache(y!, 7);
    assert.deepEqual(pool.lookupPrefix([7]), [x]);
    pool.release([x!, y!]);
    pool.allocate(2); // takes the never-used block, then x
    assert.deepEqual(pool.lookupPrefix([7]), [y]);
    pool.allocate(1);
    assert.deepEqual(pool.lookupPrefix([7]), []);
  });
});
