// The seed's workload, deterministically: every prompt starts with the same `prefixLen`-token
// prefix, then a per-request suffix; input and output lengths are uniform within ±rangeRatio.
// Tokens are words (sim/tokenizer.ts), so lengths are exact.

export interface WorkloadOptions {
  numPrompts: number;
  prefixLen: number;
  inputLen: number;
  outputLen: number;
  rangeRatio: number;
  seed: number;
  model: string;
}

export interface WorkloadRequest {
  index: number;
  /** Prompt tokens (words). */
  tokens: string[];
  maxTokens: number;
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

function uniformInt(random: () => number, center: number, ratio: number): number {
  const low = Math.round(center * (1 - ratio));
  const high = Math.round(center * (1 + ratio));
  return low + Math.floor(random() * (high - low + 1));
}

const word = (random: () => number): string => `w${Math.floor(random() * 50_000).toString(36)}`;

export function buildWorkload(o: WorkloadOptions): WorkloadRequest[] {
  const random = seededRandom(o.seed);
  const prefix = Array.from({ length: o.prefixLen }, () => word(random));
  return Array.from({ length: o.numPrompts }, (_, index) => {
    const inputLen = Math.max(o.prefixLen + 1, uniformInt(random, o.inputLen, o.rangeRatio));
    const suffix = Array.from({ length: inputLen - o.prefixLen }, () => word(random));
    return { index, tokens: [...prefix, ...suffix], maxTokens: Math.max(1, uniformInt(random, o.outputLen, o.rangeRatio)) };
  });
}

export const SEED_WORKLOAD: Omit<WorkloadOptions, "numPrompts"> = {
  prefixLen: 1000, inputLen: 4000, outputLen: 3000, rangeRatio: 0.2, seed: 0, model: "qwq",
};
