// Invariants of the simulated vLLM engine, run on the discrete-event clock.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BatchingEngine } from "../../sim/batching-engine.ts";
import { VirtualClock } from "../../sim/clock.ts";
import type { EngineRequest } from "../../sim/engine.ts";
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
});
