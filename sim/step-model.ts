// How long one engine step takes. A Vidur-style linear model:
//   step = fixed + perSeq·(running sequences) + perContextToken·(context tokens attended)
//          + perPrefillToken·(prompt tokens computed in this step)
// Profiles are named; `qwq-32b-4xa10` is derived in ../shared/reference/vllm-and-simulation.md
// for the seed's hardware (QwQ-32B, TP=4 on A10 24 GB, PCIe).

export interface StepProfile {
  name: string;
  fixedMs: number;
  perSeqMs: number;
  perContextTokenMs: number;
  perPrefillTokenMs: number;
  /** Prefill attention compute per (query token, earlier key token) pair; 0 or absent: none. */
  attentionPairMs?: number;
  /** API-server work before a request reaches the scheduler (tokenization, queueing). */
  requestOverheadMs: number;
  /** Scheduler limits (vLLM's max_num_seqs and max_num_batched_tokens). */
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  /** KV cache capacity in 16-token blocks. */
  kvBlocks: number;
  blockSize: number;
  maxLoras: number;
  /** Admit a waiting request only if its whole remaining prompt fits now, not just its first chunk
   * (vLLM's later `scheduler_reserve_full_isl`); absent or false: first chunk only, as in the
   * vLLM releases of the seed's time. */
  admitFullPrompt?: boolean;
}

export const PROFILES: Record<string, StepProfile> = {
  // 41 ms weight read + all-reduce per step; 0.3 ms per running sequence; 0.14 µs per context
  // token (64 KiB/token/GPU at ~480 GB/s); 0.40 ms per prefill token (compute + PCIe all-reduce).
  // 4,500 blocks (72K tokens) per replica: the seed ran all 60 requests at once, which needs more
  // than the 55K tokens a default A10 setup leaves (see the reference's caveat).
  "qwq-32b-4xa10": {
    name: "qwq-32b-4xa10", fixedMs: 41, perSeqMs: 0.3, perContextTokenMs: 0.00014, perPrefillTokenMs: 0.4,
    requestOverheadMs: 100, maxNumSeqs: 256, maxNumBatchedTokens: 2048, kvBlocks: 4500, blockSize: 16, maxLoras: 4,
  },
  // A small fast model for tests: short steps, small cache (easy to fill and preempt).
  tiny: {
    name: "tiny", fixedMs: 5, perSeqMs: 0.1, perContextTokenMs: 0.0001, perPrefillTokenMs: 0.01,
    requestOverheadMs: 0, maxNumSeqs: 8, maxNumBatchedTokens: 256, kvBlocks: 64, blockSize: 16, maxLoras: 2,
  },
};

export interface StepLoad {
  runningSeqs: number;
  contextTokens: number;
  prefillTokens: number;
  /** Causal attention pairs computed by this step's prefill chunks. */
  attentionPairs?: number;
}

export function stepTimeMs(p: StepProfile, load: StepLoad): number {
  return p.fixedMs + p.perSeqMs * load.runningSeqs + p.perContextTokenMs * load.contextTokens + p.perPrefillTokenMs * load.prefillTokens
    + (p.attentionPairMs ?? 0) * (load.attentionPairs ?? 0);
}

export function profileNamed(name: string, overrides: Partial<StepProfile> = {}): StepProfile {
  const base = PROFILES[name];
  if (!base) throw new Error(`unknown step profile ${name}; known: ${Object.keys(PROFILES).join(", ")}`);
  return { ...base, ...overrides };
}
