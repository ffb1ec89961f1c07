// What the HTTP face asks of a simulated inference engine: admit a request, emit its tokens over
// time, and report the load figures a router scrapes. `FixedLatencyEngine` is the simple model
// (constant time to first token and between tokens, a cap on running requests); a batching engine
// with a KV cache implements the same interface.

export interface EngineRequest {
  id: string;
  model: string;
  promptTokens: string[];
  maxTokens: number;
  /** LoRA adapter the request runs with, if any. */
  lora?: string;
}

export interface TokenSink {
  /** Called once per generated token, in order; `index` counts from 0. */
  onToken(index: number): void;
  onFinish(): void;
  /** The engine cannot serve the request (e.g. the prompt exceeds the whole KV cache). */
  onError?(message: string): void;
}

export interface EngineStats {
  running: number;
  waiting: number;
  /** Fraction of KV cache in use, 0–1. */
  kvUsage: number;
  preemptions: number;
  /** Prefix-cache lookups and hits, counted in tokens as vLLM does. */
  prefixQueries: number;
  prefixHits: number;
  runningLoras: string[];
  waitingLoras: string[];
  maxLoras: number;
  blockSize: number;
  kvBlocks: number;
}

export interface Engine {
  /** Queues a request; returns a function that cancels it (client went away). */
  submit(request: EngineRequest, sink: TokenSink): () => void;
  stats(): EngineStats;
  /** Model time in milliseconds (scaled engines run faster than the wall clock). */
  now(): number;
  close(): void;
}

export interface FixedLatencyOptions {
  ttftMs: number;
  itlMs: number;
  maxNumSeqs: number;
  /** Tokens the KV cache holds; only used to report kv usage. */
  kvCapacityTokens: number;
}

interface Running { request: EngineRequest; sink: TokenSink; produced: number; timer?: NodeJS.Timeout; done: boolean }

export class FixedLatencyEngine implements Engine {
  private readonly waiting: Running[] = [];
  private readonly running = new Set<Running>();

  constructor(private readonly opts: FixedLatencyOptions) {}

  submit(request: EngineRequest, sink: TokenSink): () => void {
    const entry: Running = { request, sink, produced: 0, done: false };
    this.waiting.push(entry);
    this.admit();
    return () => this.finish(entry, false);
  }

  stats(): EngineStats {
    let tokens = 0;
    for (const r of this.running) tokens += r.request.promptTokens.length + r.produced;
    return {
      running: this.running.size,
      waiting: this.waiting.length,
      kvUsage: Math.min(1, tokens / this.opts.kvCapacityTokens),
      preemptions: 0, prefixQueries: 0, prefixHits: 0,
      runningLoras: [], waitingLoras: [], maxLoras: 0, blockSize: 16, kvBlocks: Math.ceil(this.opts.kvCapacityTokens / 16),
    };
  }

  now(): number { return performance.now(); }

  close(): void {
    for (const r of [...this.running, ...this.waiting]) this.finish(r, false);
  }

  private admit(): void {
    while (this.running.size < this.opts.maxNumSeqs && this.waiting.length > 0) {
      const entry = this.waiting.shift()!;
      this.running.add(entry);
      this.schedule(entry, this.opts.ttftMs);
    }
  }

  private schedule(entry: Running, delayMs: number): void {
    entry.timer = setTimeout(() => this.emit(entry), delayMs);
  }

  private emit(entry: Running): void {
    if (entry.done) return;
    entry.sink.onToken(entry.produced++);
    if (entry.produced >= entry.request.maxTokens) this.finish(entry, true);
    else this.schedule(entry, this.opts.itlMs);
  }

  private finish(entry: Running, completed: boolean): void {
    if (entry.done) return;
    entry.done = true;
    if (entry.timer) clearTimeout(entry.timer);
    const queued = this.waiting.indexOf(entry);
    if (queued >= 0) this.waiting.splice(queued, 1);
    this.running.delete(entry);
    if (completed) entry.sink.onFinish();
    this.admit();
  }
}
