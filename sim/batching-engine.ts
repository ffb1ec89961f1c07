// A vLLM-V1-like engine in model time, following vllm/v1/core/sched/scheduler.py (`schedule`,
// `_preempt_request`) and vllm/v1/core/kv_cache_manager.py (`get_computed_blocks`,
// `allocate_slots`, `free`); bench/CALIBRATION.md sets out what was checked against which source.
//
// One step:
// 1. RUNNING requests, in list order, while the token budget lasts: each gets what it still has to
//    compute (1 token for a decode, up to the rest of the budget for a prefill chunk) and the blocks
//    for exactly those tokens. If the free queue is short, the LAST running request is preempted
//    (recompute: its blocks are freed tail-first, its computed tokens reset, and it goes to the FRONT
//    of the waiting queue), again and again until the blocks fit or the request has preempted itself,
//    which ends the running pass.
// 2. Only if nothing was preempted: WAITING requests in order, while budget, `maxNumSeqs` and LoRA
//    slots allow. Each looks up its longest cached prefix (all but its last token), then needs blocks
//    for its first chunk only; if the free queue (less any cached blocks the hit would take out of
//    it) is short, admission stops: the head of the queue blocks the rest.
// 3. Blocks are cached (hashed) as soon as they are scheduled to fill, as vLLM does, including
//    blocks of generated tokens, so a preempted request finds its own surviving blocks again.
// When the step's time has passed, every request whose context is fully computed samples a token.
import { blockHashes, BlockPool, chainHash } from "./kv-cache.ts";
import type { Clock } from "./clock.ts";
import type { Engine, EngineRequest, EngineStats, TokenSink } from "./engine.ts";
import { stepTimeMs, type StepProfile } from "./step-model.ts";

const enum State { Arriving, Waiting, Running, Done }

/** A request's state inside the engine (exported as a type for the lab's what-if copies, bench/lab/fork.ts). */
export interface Seq {
  request: EngineRequest;
  sink: TokenSink;
  /** Distinguishes the hashes of this request's generated blocks from everyone else's. */
  nonce: number;
  promptLen: number;
  /** Hashes of full blocks known so far: the prompt's, then generated blocks' as they fill. */
  hashes: number[];
  /** Block table: block ids in token order. */
  blocks: number[];
  /** Leading blocks already cached (hashed). */
  cachedBlocks: number;
  /** Tokens whose KV is computed (or scheduled in the running step). */
  computed: number;
  generated: number;
  state: State;
  preemptions: number;
}

interface Scheduled { seq: Seq; tokens: number; prefill: boolean }

export class BatchingEngine implements Engine {
  private readonly pool: BlockPool;
  private waiting: Seq[] = [];
  private running: Seq[] = [];
  private stepping = false;
  private kickPending = false;
  /** Model time the last step ended: back-to-back steps are timed from it, not from when the
   * timer actually fired, so timer lateness on a scaled real clock never accumulates. */
  private lastStepEnd = 0;
  private closed = false;
  private nonces = 0;
  private readonly counters = { preemptions: 0, prefixQueries: 0, prefixHits: 0, steps: 0, recomputedTokens: 0 };
  private readonly cancelTimers = new Set<() => void>();
  private readonly blockSize: number;

  constructor(private readonly profile: StepProfile, private readonly clock: Clock) {
    this.pool = new BlockPool(profile.kvBlocks);
    this.blockSize = profile.blockSize;
  }

  now(): number { return this.clock.now(); }

  submit(request: EngineRequest, sink: TokenSink): () => void {
    const seq: Seq = {
      request, sink, nonce: ++this.nonces, promptLen: request.promptTokens.length,
      hashes: blockHashes(request.promptTokens, this.blockSize, request.lora ?? ""),
      blocks: [], cachedBlocks: 0, computed: 0, generated: 0, state: State.Arriving, preemptions: 0,
    };
    const cancelArrival = this.clock.after(this.profile.requestOverheadMs, () => {
      this.cancelTimers.delete(cancelArrival);
      if (seq.state === State.Done) return;
      // Like max_model_len at the API server: a prompt the whole cache cannot hold is refused.
      if (this.blocksFor(seq.promptLen + 1) > this.pool.usableBlocks) {
        this.fail(seq, `prompt of ${seq.promptLen} tokens does not fit in the KV cache (${this.pool.usableBlocks} usable blocks of ${this.blockSize})`);
        return;
      }
      seq.state = State.Waiting;
      this.waiting.push(seq);
      this.kickSoon();
    });
    this.cancelTimers.add(cancelArrival);
    return () => this.abort(seq);
  }

  stats(): EngineStats {
    return {
      running: this.running.length,
      waiting: this.waiting.length,
      kvUsage: this.pool.usableBlocks === 0 ? 0 : this.pool.usedBlocks / this.pool.usableBlocks,
      preemptions: this.counters.preemptions,
      prefixQueries: this.counters.prefixQueries,
      prefixHits: this.counters.prefixHits,
      runningLoras: distinctLoras(this.running),
      waitingLoras: distinctLoras(this.waiting),
      maxLoras: this.profile.maxLoras,
      blockSize: this.blockSize,
      kvBlocks: this.profile.kvBlocks,
    };
  }

  /** Blocks referenced by requests, for invariant checks. */
  get usedBlocks(): number { return this.pool.usedBlocks; }
  get steps(): number { return this.counters.steps; }
  /** Tokens computed again after a preemption (what recompute cost). */
  get recomputedTokens(): number { return this.counters.recomputedTokens; }
  /** The block pool, for white-box tests. */
  get blockPool(): BlockPool { return this.pool; }
  /** Request ids in the running and waiting queues, in queue order. */
  queues(): { running: string[]; waiting: string[] } {
    return { running: this.running.map((s) => s.request.id), waiting: this.waiting.map((s) => s.request.id) };
  }

  close(): void {
    this.closed = true;
    for (const cancel of this.cancelTimers) cancel();
    for (const seq of [...this.running, ...this.waiting]) this.abort(seq);
  }

  private numTokens(seq: Seq): number { return seq.promptLen + seq.generated; }

  private blocksFor(tokens: number): number { return Math.ceil(tokens / this.blockSize); }

  /** Starts a step if none is running. `continuing`: called as the previous step ended. */
  private kick(continuing = false): void {
    if (this.stepping || this.closed) return;
    const batch = this.schedule();
    if (batch.length === 0) return;
    this.stepping = true;
    this.counters.steps++;
    let contextTokens = 0, prefillTokens = 0, attentionPairs = 0;
    for (const { seq, tokens, prefill } of batch) {
      contextTokens += seq.computed; // already advanced past this step's tokens
      if (prefill) {
        prefillTokens += tokens;
        const before = seq.computed - tokens;
        attentionPairs += tokens * before + (tokens * (tokens + 1)) / 2;
      }
    }
    const duration = stepTimeMs(this.profile, { runningSeqs: batch.length, contextTokens, prefillTokens, attentionPairs });
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
    for (let i = 0; i < this.running.length && budget > 0; i++) {
      const seq = this.running[i]!;
      const total = this.numTokens(seq);
      const tokens = Math.min(total - seq.computed, budget);
      if (tokens <= 0) continue;
      const need = this.blocksFor(seq.computed + tokens) - seq.blocks.length;
      if (seq.blocks.length + need > this.pool.usableBlocks) {
        // Only a request longer than the whole cache gets here (vLLM's max_model_len prevents it).
        this.running.splice(i--, 1);
        this.fail(seq, `request of ${total} tokens outgrew the KV cache (${this.pool.usableBlocks} usable blocks)`);
        continue;
      }
      let self = false;
      while (need > this.pool.freeBlocks) {
        const victim = this.running.pop()!;
        this.preempt(victim);
        preempted = true;
        if (victim === seq) { self = true; break; }
      }
      if (self) break;
      if (need > 0) for (const b of this.pool.allocate(need)) seq.blocks.push(b);
      batch.push(this.scheduled(seq, tokens));
      budget -= tokens;
    }
    // vLLM admits nothing in a step that preempted; an empty step would only delay this to the next.
    if (!preempted || batch.length === 0) this.admit(batch, budget);
    return batch;
  }

  private admit(batch: Scheduled[], budget: number): void {
    let loras: Set<string> | undefined;
    for (let i = 0; i < this.waiting.length && budget > 0;) {
      if (this.running.length >= this.profile.maxNumSeqs) break;
      const seq = this.waiting[i]!;
      const lora = seq.request.lora;
      if (lora !== undefined) {
        loras ??= new Set(distinctLoras(this.running));
        if (!loras.has(lora) && loras.size >= this.profile.maxLoras) { i++; continue; } // skipped, keeps its place
      }
      const total = this.numTokens(seq);
      // get_computed_blocks: the longest cached prefix, leaving at least the last token to compute.
      const hit = this.pool.lookupPrefix(seq.hashes, Math.floor((total - 1) / this.blockSize));
      const hitTokens = hit.length * this.blockSize;
      const tokens = Math.min(total - hitTokens, budget);
      // allocate_slots: blocks for the tokens scheduled now; a hit on a free cached block uses it up.
      const available = this.pool.freeBlocks - this.pool.countEvictable(hit);
      const need = this.blocksFor(hitTokens + tokens) - hit.length;
      if (this.profile.admitFullPrompt && this.blocksFor(total) - hit.length > available) break;
      if (need > available) break;
      this.pool.touch(hit);
      seq.cachedBlocks = hit.length;
      seq.computed = hitTokens;
      seq.blocks = hit;
      if (need > 0) for (const b of this.pool.allocate(need)) seq.blocks.push(b);
      this.counters.prefixQueries += total;
      this.counters.prefixHits += hitTokens;
      this.waiting.splice(i, 1);
      seq.state = State.Running;
      this.running.push(seq);
      if (lora !== undefined) loras!.add(lora);
      batch.push(this.scheduled(seq, tokens));
      budget -= tokens;
    }
  }

  /** Records `tokens` as scheduled for `seq` and caches the blocks they fill. */
  private scheduled(seq: Seq, tokens: number): Scheduled {
    const prefill = seq.computed + tokens < this.numTokens(seq) || tokens > 1;
    if (seq.preemptions > 0 && seq.computed < this.numTokens(seq) - 1) this.counters.recomputedTokens += Math.min(tokens, this.numTokens(seq) - 1 - seq.computed);
    seq.computed += tokens;
    const full = Math.floor(seq.computed / this.blockSize);
    for (let i = seq.cachedBlocks; i < full; i++) {
      if (i >= seq.hashes.length) seq.hashes.push(chainHash(i === 0 ? 0 : seq.hashes[i - 1]!, seq.nonce * 65536 + i));
      this.pool.cache(seq.blocks[i]!, seq.hashes[i]!);
    }
    if (full > seq.cachedBlocks) seq.cachedBlocks = full;
    return { seq, tokens, prefill };
  }

  /** Recompute preemption: free the victim's blocks last-first and put it at the front of the
   * waiting queue. Its cached blocks stay in the free queue until something reuses them. */
  private preempt(victim: Seq): void {
    this.freeBlocks(victim);
    victim.computed = 0;
    victim.state = State.Waiting;
    victim.preemptions++;
    this.waiting.unshift(victim);
    this.counters.preemptions++;
  }

  private freeBlocks(seq: Seq): void {
    if (seq.blocks.length > 0) this.pool.release(seq.blocks.reverse());
    seq.blocks = [];
    seq.cachedBlocks = 0;
  }

  private complete(batch: Scheduled[]): void {
    for (const { seq } of batch) {
      if (seq.state !== State.Running) continue; // aborted during the step
      if (seq.computed < this.numTokens(seq)) continue; // prefill continues next step
      seq.sink.onToken(seq.generated++);
      if (seq.generated >= seq.request.maxTokens && seq.state === State.Running) this.finish(seq);
    }
  }

  private finish(seq: Seq): void {
    this.remove(seq);
    seq.sink.onFinish();
  }

  private fail(seq: Seq, message: string): void {
    this.remove(seq);
    seq.sink.onError?.(message);
  }

  private abort(seq: Seq): void {
    if (seq.state === State.Done) return;
    this.remove(seq);
    this.kickSoon();
  }

  /** Schedules once everything else due at this instant has happened, as vLLM's engine core drains
   * its input queue before it schedules: requests arriving together are scheduled together. */
  private kickSoon(): void {
    if (this.stepping || this.kickPending || this.closed) return;
    this.kickPending = true;
    const cancel = this.clock.after(0, () => {
      this.cancelTimers.delete(cancel);
      this.kickPending = false;
      this.kick();
    });
    this.cancelTimers.add(cancel);
  }

  private remove(seq: Seq): void {
    if (seq.state === State.Running) {
      const r = this.running.indexOf(seq);
      if (r >= 0) this.running.splice(r, 1);
    } else if (seq.state === State.Waiting) {
      const w = this.waiting.indexOf(seq);
      if (w >= 0) this.waiting.splice(w, 1);
    }
    seq.state = State.Done;
    this.freeBlocks(seq);
  }
}

function distinctLoras(seqs: Seq[]): string[] {
  const out = new Set<string>();
  for (const s of seqs) if (s.request.lora !== undefined) out.add(s.request.lora);
  return [...out];
}
