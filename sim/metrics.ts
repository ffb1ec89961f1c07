// vLLM v1's Prometheus metric names, so a router scrapes the simulator as it would vLLM.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Engine } from "./engine.ts";

const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];

export interface SimMetricsOptions {
  modelName: string;
  /** Also expose the pre-0.9 name vllm:gpu_cache_usage_perc. */
  legacyCacheMetric?: boolean | undefined;
}

export class SimMetrics {
  readonly registry = new Registry();
  readonly promptTokens: Counter<string>;
  readonly generationTokens: Counter<string>;
  readonly requestSuccess: Counter<string>;
  readonly ttft: Histogram<string>;
  readonly e2e: Histogram<string>;
  readonly itl: Histogram<string>;
  private readonly labels: { model_name: string };
  /** Load reported on top of the engine's (the /admin/load test hook). */
  extra: { waiting: number; running: number; kvUsage?: number | undefined } = { waiting: 0, running: 0 };

  constructor(engine: Engine, opts: SimMetricsOptions) {
    const registers = [this.registry];
    this.labels = { model_name: opts.modelName };
    const labelNames = ["model_name"];
    const gauge = (name: string, help: string, read: () => number): void => {
      const labels = this.labels;
      new Gauge({ name, help, labelNames, registers, collect() { this.set(labels, read()); } });
    };
    const kv = (): number => this.extra.kvUsage ?? engine.stats().kvUsage;
    gauge("vllm:num_requests_running", "Number of requests in model execution batches.", () => engine.stats().running + this.extra.running);
    gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", () => engine.stats().waiting + this.extra.waiting);
    if (opts.legacyCacheMetric) gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage (deprecated name).", kv);
    else gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", kv);
    const counterFrom = (name: string, help: string, read: () => number): void => {
      const labels = this.labels;
      new Counter({ name, help, labelNames, registers, collect() { this.reset(); this.inc(labels, read()); } });
    };
    counterFrom("vllm:num_preemptions_total", "Cumulative number of preemptions.", () => engine.stats().preemptions);
    counterFrom("vllm:prefix_cache_queries_total", "Prefix cache queries, in tokens.", () => engine.stats().prefixQueries);
    counterFrom("vllm:prefix_cache_hits_total", "Prefix cache hits, in tokens.", () => engine.stats().prefixHits);
    const config = engine.stats();
    const info = new Gauge({ name: "vllm:cache_config_info", help: "Information of the LLMEngine CacheConfig.", labelNames: ["block_size", "num_gpu_blocks", "enable_prefix_caching"], registers });
    info.set({ block_size: String(config.blockSize), num_gpu_blocks: String(config.kvBlocks), enable_prefix_caching: "True" }, 1);
    // vLLM: one series whose labels list the adapters; its value is a timestamp (newest wins).
    new Gauge({
      name: "vllm:lora_requests_info", help: "Running stats on lora requests.", registers,
      labelNames: ["max_lora", "running_lora_adapters", "waiting_lora_adapters"],
      collect() {
        const s = engine.stats();
        this.reset();
        this.set({ max_lora: String(s.maxLoras), running_lora_adapters: s.runningLoras.join(","), waiting_lora_adapters: s.waitingLoras.join(",") }, Date.now() / 1000);
      },
    });
    this.promptTokens = new Counter({ name: "vllm:prompt_tokens_total", help: "Number of prefill tokens processed.", labelNames, registers });
    this.generationTokens = new Counter({ name: "vllm:generation_tokens_total", help: "Number of generation tokens processed.", labelNames, registers });
    this.requestSuccess = new Counter({ name: "vllm:request_success_total", help: "Count of successfully processed requests.", labelNames: ["model_name", "finished_reason"], registers });
    this.ttft = new Histogram({ name: "vllm:time_to_first_token_seconds", help: "Histogram of time to first token in seconds.", labelNames, buckets: LATENCY_BUCKETS, registers });
    this.itl = new Histogram({ name: "vllm:inter_token_latency_seconds", help: "Histogram of inter-token latency in seconds.", labelNames, buckets: LATENCY_BUCKETS, registers });
    this.e2e = new Histogram({ name: "vllm:e2e_request_latency_seconds", help: "Histogram of end to end request latency in seconds.", labelNames, buckets: LATENCY_BUCKETS, registers });
  }

  /** Records a finished request; durations in seconds of model time. */
  finished(prompt: number, generated: number, ttftS: number, e2eS: number): void {
    this.promptTokens.inc(this.labels, prompt);
    this.generationTokens.inc(this.labels, generated);
    this.requestSuccess.inc({ ...this.labels, finished_reason: "length" });
    this.ttft.observe(this.labels, ttftS);
    this.e2e.observe(this.labels, e2eS);
    if (generated > 1) this.itl.observe(this.labels, (e2eS - ttftS) / (generated - 1));
  }
}
