// What a model server's /metrics says about its load, across the engines users run: vLLM (v1
// names and the pre-0.9 `gpu_cache_usage_perc`; counters with or without `_total`), SGLang and
// trtllm-serve. Values summed over label sets (several models or engines behind one port), and
// clamped to a finite, non-negative range; adapter names that could not go into the snapshot
// are left out.
import { SNAPSHOT_NAME } from "../contract.ts";
import type { EndpointLoad } from "../scheduling/plugins.ts";
import { parseSamples, type Sample } from "./prometheus-text.ts";

export interface EngineLoad extends EndpointLoad {
  /** Which engine's names were found. */
  engine: "vllm" | "sglang" | "trtllm" | "unknown";
}

const NAMES = {
  vllm: { waiting: ["vllm:num_requests_waiting"], running: ["vllm:num_requests_running"], kv: ["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"] },
  sglang: { waiting: ["sglang:num_queue_reqs"], running: ["sglang:num_running_reqs"], kv: ["sglang:token_usage"] },
  trtllm: { waiting: ["trtllm_num_requests_waiting"], running: ["trtllm_num_requests_running"], kv: ["trtllm_kv_cache_utilization"] },
} as const;
const LORA_INFO = "vllm:lora_requests_info";

const WANTED = new Set<string>([LORA_INFO, ...Object.values(NAMES).flatMap((n) => [...n.waiting, ...n.running, ...n.kv])]);

/** Request counts are clamped to [0, MAX_REQUESTS]; +Inf counts as the maximum, NaN as 0. */
const MAX_REQUESTS = 1_000_000;
const MAX_LORA_SLOTS = 1024;
const MAX_ADAPTERS = 64;

/** Clamps to [0, max]: a replica's metrics are untrusted, and must never make it look best. */
function clamp(v: number, max: number): number {
  if (Number.isNaN(v)) return 0;
  return Math.min(max, Math.max(0, v));
}

function sum(samples: Map<string, Sample[]>, names: readonly string[]): number | undefined {
  for (const name of names) {
    const list = samples.get(name);
    if (list && list.length > 0) return clamp(list.reduce((n, s) => n + clamp(s.value, MAX_REQUESTS), 0), MAX_REQUESTS);
  }
  return undefined;
}

function max(samples: Map<string, Sample[]>, names: readonly string[]): number | undefined {
  for (const name of names) {
    const list = samples.get(name);
    if (list && list.length > 0) return list.reduce((m, s) => Math.max(m, clamp(s.value, 1)), 0);
  }
  return undefined;
}

/** A label's comma-separated adapter names, keeping only names that are safe in the snapshot. */
const adapters = (v: string | undefined): string[] =>
  (v ? v.split(",").map((s) => s.trim()).filter((s) => SNAPSHOT_NAME.test(s)).slice(0, MAX_ADAPTERS) : []);

export function parseEngineLoad(text: string): EngineLoad {
  const samples = parseSamples(text, WANTED);
  for (const engine of ["vllm", "sglang", "trtllm"] as const) {
    const names = NAMES[engine];
    const waiting = sum(samples, names.waiting);
    const running = sum(samples, names.running);
    if (waiting === undefined && running === undefined) continue;
    // vLLM's LoRA info is one series per update; its value is a timestamp and the newest wins.
    const lora = samples.get(LORA_INFO)?.reduce<Sample | undefined>((best, s) => (!best || s.value > best.value ? s : best), undefined);
    const kv = max(samples, names.kv);
    return {
      engine, waiting: waiting ?? 0, running: running ?? 0, kvUsage: kv ?? 0,
      reported: { waiting: waiting !== undefined, kv: kv !== undefined },
      runningLoras: adapters(lora?.labels.running_lora_adapters), waitingLoras: adapters(lora?.labels.waiting_lora_adapters),
      maxLoras: Math.round(clamp(Number(lora?.labels.max_lora ?? 0), MAX_LORA_SLOTS)),
    };
  }
  return { engine: "unknown", waiting: 0, running: 0, kvUsage: 0, runningLoras: [], waitingLoras: [], maxLoras: 0, reported: { waiting: false, kv: false } };
}
