// A vLLM-V1-like engine in model time: continuous batching under a per-step token budget with
// chunked prefill, a KV cache of fixed-size blocks with prefix caching, preemption by recompute
// when blocks run out, and a LoRA slot limit. Each step's duration comes from a StepProfile.
//
// One step: running requests are scheduled first (a decode needs 1 token, an unfinished prefill
// takes what the budget leaves), preempting the newest running request while blocks are short;
// then waiting requests are admitted in arrival order while budget, sequence slots, blocks and
// LoRA slots allow. When the step's time has passed, every request whose context is fully
// computed samples one token.
import { blockHashes, BlockPool } from "./kv-cache.ts";
import type { Clock } from "./clock.ts";
import type { Engine, EngineRequest, EngineStats, TokenSink } from "./engine.ts";
import { stepTimeMs, type StepProfile } from "./step-model.ts";

interface Seq {
  request: EngineRequest;
  sink: TokenSink;
  promptHashes: string[];
  blocks: number[];
  /** Tokens whose KV is computed. */
  computed: number;
  generated: number;
  /** Whether the prefix cache was consulted for the current admission. */
  matched: boolean;
  done: boolean;
}

interface Scheduled { seq: Seq; tokens: number }

export class BatchingEngine implements Engine {
  private readonly pool: BlockPool;
  private waiting: Seq[] = [];
  private running: Seq[] = [];
  private stepping = false;
  /** Model time the last step ended: back-to-back steps are timed from it, not from when the
   * timer actually fired, so timer lateness on a scaled real clock never accumulates. */
  private lastStepEnd = 0;
  private closed = false;
  private readonly counters = { preemptions: 0, prefixQueries: 0, prefixHits: 0, steps: 0 };
  private readonly cancelTimers = new Set<() => void>();

  constructor(private readonly profile: StepProfile, private readonly clock: Clock) {
    this.pool = new BlockPool(profile.kvBlocks);
  }

  now(): number { return this.clock.now(); }

  submit(request: EngineRequest, sink: TokenSink): () => void {
    const seq: Seq = {
      request, sink, promptHashes: blockHashes(request.promptTokens, this.profile.blockSize, request.lora ?? ""),
      blocks: [], computed: 0, generated: 0, matched: false, done: false,
    };
    const cancelArrival = this.clock.after(this.profile.requestOverheadMs, () => {
      this.cancelTimers.delete(cancelArrival);
      if (seq.done) return;
      this.waiting.push(seq);
      this.kick();
    });
    this.cancelTimers.add(cancelArrival);
    return () => this.abort(seq);
  }

  stats(): EngineStats {
    return {
      running: this.running.length,
      waiting: this.waiting.length,
      kvUsage: this.pool.usedBlocks / this.pool.capacity,
      preemptions: this.counters.preemptions,
      prefixQueries: this.counters.prefixQueries,
      prefixHits: this.counters.prefixHits,
      runningLoras: distinctLoras(this.running),
      waitingLoras: distinctLoras(this.waiting),
      maxLoras: this.profile.maxLoras,
      blockSize: this.profile.blockSize,
      kvBlocks: this.profile.kvBlocks,
    };
  }

  /** Blocks in use, for invariant checks. */
  get usedBlocks(): number { return this.pool.usedBlocks; }
  get steps(): number { return this.counters.steps; }

  close(): void {
    this.closed = true;
    for (const cancel of this.cancelTimers) cancel();
    for (const seq of [...this.running, ...this.waiting]) this.abort(seq);
  }

  private contextLength(seq: Seq): number {
    return seq.request.promptTokens.length + seq.generated;
  }

  private blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.profile.blockSize);
  }

  /** Starts a step if none is running. `continuing`: called as the previous step ended. */
  private kick(continuing = false): void {
    if (this.stepping || this.closed) return;
    const batch = this.schedule();
    if (batch.length === 0) {
      this.failUnservable();
      return;
    }
    this.stepping = true;
    this.counters.steps++;
    const duration = stepTimeMs(this.profile, {
      runningSeqs: batch.length,
      contextTokens: batch.reduce((n, s) => n + s.seq.computed + s.tokens, 0),
      prefillTokens: batch.reduce((n, s) => n + (s.tokens > 1 || s.seq.computed < s.seq.request.promptTokens.length ? s.tokens : 0), 0),
    });
    const start = continuing ? this.lastStepEnd : Math.max(this.clock.now(), this.lastStepEnd);
    this.lastStepEnd = start + duration;
    const cancel = this.clock.at(this.lastStepEnd, () => {
      this.cancelTimers.delete(cancel);
      this.stepping = false;
      this.complete(batch);
      if (this.running.length > 0 || this.waiting.length > 0) this.kick(true);
    });
    this.cancelTimers.add(cancel);
  }

  private schedule(): Scheduled[] {
    const batch: Scheduled[] = [];
    let budget = this.profile.maxNumBatchedTokens;
    let preempted = false;
    for (const seq of [...this.running]) {
      if (budget === 0) break;
      if (seq.done) continue;
      const tokens = Math.min(this.contextLength(seq) - seq.computed, budget);
      const need = this.blocksFor(seq.computed + tokens) - seq.blocks.length;
      // Preempt the newest running request until the blocks fit (possibly this one itself).
      while (need > this.pool.freeBlocks && this.running.includes(seq)) {
        this.preempt(this.running[this.running.length - 1]!);
        preempted = true;
      }
      if (!this.running.includes(seq)) continue;
      seq.blocks.push(...this.pool.allocate(need)!);
      batch.push({ seq, tokens });
      budget -= tokens;
    }
    // Like vLLM, admit nothing new in a step that had to preempt (unless nothing else runs).
    if (!preempted || batch.length === 0) this.admit(batch, budget);
    return batch;
  }

  private admit(batch: Scheduled[], budget: number): void {
    const loras = new Set(distinctLoras(this.running));
    for (let i = 0; i < this.waiting.length && budget > 0 && this.running.length < this.profile.maxNumSeqs;) {
      const seq = this.waiting[i]!;
      const lora = seq.request.lora;
      if (lora !== undefined && !loras.has(lora) && loras.size >= this.profile.maxLoras) { i++; continue; }
      this.matchPrefix(seq);
      const tokens = Math.min(this.contextLength(seq) - seq.computed, budget);
      const need = this.blocksFor(seq.computed + tokens) - seq.blocks.length;
      const fresh = this.pool.allocate(need);
      if (fresh === null) {
        this.unmatch(seq); // out of blocks: hold nothing while waiting for running requests to finish
        break;
      }
      seq.blocks.push(...fresh);
      this.waiting.splice(i, 1);
      this.running.push(seq);
      if (lora !== undefined) loras.add(lora);
      batch.push({ seq, tokens });
      budget -= tokens;
    }
  }

  /** Takes cached leading blocks; at least one token is always computed, as in vLLM. */
  private matchPrefix(seq: Seq): void {
    if (seq.matched) return;
    seq.matched = true;
    const size = this.profile.blockSize;
    const usable = Math.floor((this.contextLength(seq) - 1) / size);
    const hit = this.pool.lookupPrefix(seq.promptHashes.slice(0, usable));
    this.pool.acquire(hit);
    seq.blocks = hit;
    seq.computed = hit.length * size;
    this.counters.prefixQueries += seq.request.promptTokens.length;
    this.counters.prefixHits += seq.computed;
  }

  /** Gives back a waiting request's blocks; it matches the prefix cache again when admitted. */
  private unmatch(seq: Seq): void {
    if (seq.blocks.length > 0) this.pool.release(seq.blocks);
    seq.blocks = [];
    seq.computed = 0;
    seq.matched = false;
  }

  /** Recompute preemption: the victim loses its KV and goes back to the front of the queue. */
  private preempt(victim: Seq): void {
    this.running.splice(this.running.indexOf(victim), 1);
    this.unmatch(victim);
    this.waiting.unshift(victim);
    this.counters.preemptions++;
  }

  private complete(batch: Scheduled[]): void {
    for (const { seq, tokens } of batch) {
      if (seq.done || !this.running.includes(seq)) continue;
      seq.computed += tokens;
      this.registerFullBlocks(seq);
      if (seq.computed < this.contextLength(seq)) continue; // prefill continues next step
      seq.sink.onToken(seq.generated++);
      if (seq.generated >= seq.request.maxTokens) this.finish(seq);
    }
  }

  private registerFullBlocks(seq: Seq): void {
    const full = Math.min(Math.floor(seq.computed / this.profile.blockSize), seq.promptHashes.length);
    for (let i = 0; i < full; i++) this.pool.register(seq.blocks[i]!, seq.promptHashes[i]!);
  }

  private finish(seq: Seq): void {
    this.remove(seq);
    seq.sink.onFinish();
  }

  private abort(seq: Seq): void {
    if (seq.done) return;
    this.remove(seq);
    if (!this.stepping) this.kick();
  }

  private remove(seq: Seq): void {
    seq.done = true;
    const r = this.running.indexOf(seq);
    if (r >= 0) this.running.splice(r, 1);
    const w = this.waiting.indexOf(seq);
    if (w >= 0) this.waiting.splice(w, 1);
    if (seq.blocks.length > 0) this.pool.release(seq.blocks);
    seq.blocks = [];
  }

  /** Nothing could be scheduled: a waiting request needs more blocks than the whole cache. */
  private failUnservable(): void {
    if (this.running.length > 0 || this.waiting.length === 0) return;
    const seq = this.waiting[0]!;
    this.remove(seq);
    seq.sink.onError?.(`prompt of ${seq.request.promptTokens.length} tokens does not fit in the KV cache (${this.profile.kvBlocks} blocks of ${this.profile.blockSize})`);
    this.kick();
  }
}

function distinctLoras(seqs: Seq[]): string[] {
  return [...new Set(seqs.flatMap((s) => (s.request.lora === undefined ? [] : [s.request.lora])))];
}
