// The seed's workload, deterministically: every prompt starts with the same `prefixLen`-token
// prefix, then a per-request suffix. Tokens are words (sim/tokenizer.ts), so lengths are exact.
//
// How `rangeRatio` spreads the lengths depends on `rangeMode`:
// - "symmetric" (the default): total input (prefix included) uniform in inputLen·[1−r, 1+r], output
//   uniform in outputLen·[1−r, 1+r].
// - "legacy": vLLM's benchmark_serving.py random dataset before vllm-project/vllm#16126 (April 2025):
//   the prefix, then a random part uniform in [⌊inputLen·r⌋, inputLen]; output uniform in
//   [⌊outputLen·r⌋, outputLen]. With r = 0.2 the means are prefix + 0.6·inputLen and 0.6·outputLen.
//   The seed ran this: its 3000 prompts took 5,822 s at 916 output tok/s, 1,778 output tokens per
//   request against 1,800 expected (3,000 for the symmetric reading); see bench/CALIBRATION.md.

export interface WorkloadOptions {
  numPrompts: number;
  prefixLen: number;
  inputLen: number;
  outputLen: number;
  rangeRatio: number;
  seed: number;
  model: string;
  rangeMode?: "symmetric" | "legacy";
}

export interface WorkloadRequest {
  index: number;
  /** Prompt tokens (words). */
  tokens: string[];
  maxTokens: number;
  /** Leading tokens sent as a system message (a tenant's system prompt); absent: one user message. */
  systemTokens?: number;
}

/** mulberry32: a small seeded PRNG, so the same options always give the same requests. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform integer in [low, high]. */
function between(random: () => number, low: number, high: number): number {
  return low + Math.floor(random() * (high - low + 1));
}

function uniformInt(random: () => number, center: number, ratio: number): number {
  return between(random, Math.round(center * (1 - ratio)), Math.round(center * (1 + ratio)));
}

const VOCABULARY_SIZE = 50_000;
let vocabulary: string[] | undefined;
const word = (random: () => number): string => {
  vocabulary ??= Array.from({ length: VOCABULARY_SIZE }, (_, i) => `w${i.toString(36)}`);
  return vocabulary[Math.floor(random() * VOCABULARY_SIZE)]!;
};

export function buildWorkload(o: WorkloadOptions): WorkloadRequest[] {
  const random = seededRandom(o.seed);
  const prefix = Array.from({ length: o.prefixLen }, () => word(random));
  const legacy = o.rangeMode === "legacy";
  return Array.from({ length: o.numPrompts }, (_, index) => {
    const inputLen = legacy
      ? o.prefixLen + Math.max(1, between(random, Math.floor(o.inputLen * o.rangeRatio), o.inputLen))
      : Math.max(o.prefixLen + 1, uniformInt(random, o.inputLen, o.rangeRatio));
    const tokens = prefix.slice();
    for (let i = o.prefixLen; i < inputLen; i++) tokens.push(word(random));
    const maxTokens = legacy ? between(random, Math.floor(o.outputLen * o.rangeRatio), o.outputLen) : uniformInt(random, o.outputLen, o.rangeRatio);
    return { index, tokens, maxTokens: Math.max(1, maxTokens) };
  });
}

/** The seed's benchmark_serving.py settings: random dataset, 1000-token prefix, input and output
 * lengths 4000 and 3000, range ratio 0.2, with the pre-April-2025 meaning of the ratio. */
export const SEED_WORKLOAD: Omit<WorkloadOptions, "numPrompts"> = {
  prefixLen: 1000, inputLen: 4000, outputLen: 3000, rangeRatio: 0.2, seed: 0, model: "qwq", rangeMode: "legacy",
};

export interface TenantWorkloadOptions {
  numPrompts: number;
  /** Tenants, each with its own system prompt of `systemLen` tokens. */
  tenants: number;
  /** Zipf exponent of tenant popularity (0: uniform; 1: tenant k is 1/k as popular as the first). */
  zipf: number;
  systemLen: number;
  /** The user part: U[⌊inputLen·r⌋, inputLen] tokens; output U[⌊outputLen·r⌋, outputLen] (the legacy reading). */
  inputLen: number;
  outputLen: number;
  rangeRatio: number;
  seed: number;
}

/** Many tenants, each with its own long system prompt sent as a system message, then a random user
 * part: what prefix affinity is for. Tenant k is drawn with probability ∝ 1/k^zipf. */
export function buildTenantWorkload(o: TenantWorkloadOptions): WorkloadRequest[] {
  const random = seededRandom(o.seed ^ 0x7e4a47);
  const systems = Array.from({ length: o.tenants }, () => Array.from({ length: o.systemLen }, () => word(random)));
  const weights = Array.from({ length: o.tenants }, (_, k) => 1 / (k + 1) ** o.zipf);
  const total = weights.reduce((a, b) => a + b, 0);
  const tenantOf = (): number => {
    let roll = random() * total;
    for (let k = 0; k < weights.length; k++) if ((roll -= weights[k]!) < 0) return k;
    return weights.length - 1;
  };
  return Array.from({ length: o.numPrompts }, (_, index) => {
    const tenant = tenantOf();
    const userLen = Math.max(1, between(random, Math.floor(o.inputLen * o.rangeRatio), o.inputLen));
    const tokens = systems[tenant]!.slice();
    for (let i = 0; i < userLen; i++) tokens.push(word(random));
    const maxTokens = Math.max(1, between(random, Math.floor(o.outputLen * o.rangeRatio), o.outputLen));
    return { index, tokens, maxTokens, systemTokens: o.systemLen };
  });
}

/** Poisson arrival times (ms of model time from the start) at `ratePerS` requests per second: the
 * same draws, in the same order, as bench/client.ts makes when its concurrency does not bind. */
export function poissonArrivals(count: number, ratePerS: number, seed: number): number[] {
  const random = seededRandom(seed ^ 0x5eed);
  const out: number[] = [];
  let t = 0;
  for (let i = 0; i < count; i++) {
    t += (-Math.log(1 - random()) / ratePerS) * 1000;
    out.push(t);
  }
  return out;
}
