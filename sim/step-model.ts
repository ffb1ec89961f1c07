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
  // QwQ-32B (Qwen2.5-32B: 64 layers, hidden 5120, 40 query / 8 KV heads of 128, 32.76B parameters,
  // bf16) at TP=4 on 4×A10 24 GB (PCIe), vLLM V1 defaults for a <70 GiB GPU. Every value comes
  // from the hardware, not from the seed's figures; bench/CALIBRATION.md has the derivations.
  // - fixedMs 44: reading 16.38 GB of weights per GPU at ~75% of 600 GB/s (36 ms), 128 small
  //   PCIe all-reduces (~4 ms), sampler and engine-core CPU time (~4 ms); llmperf's 46.7 ms batch-1
  //   ITL for a 34.4B model on 4×A10G, scaled to 32.8B, gives 44.5 ms.
  // - perContextTokenMs 0.00014: 64 KiB of KV per token per GPU read at ~480 GB/s.
  // - perPrefillTokenMs 0.40: 16.4 GFLOP per token per GPU at ~70% of 125 TFLOPS (0.19 ms) plus
  //   1.97 MB of all-reduce traffic per token per GPU at ~10 GB/s over PCIe (0.20 ms).
  // - attentionPairMs 5.2e-6: 327,680 FLOP per (query, key) pair per GPU (4 × 10 heads × 128 ×
  //   64 layers) at ~50% of 125 TFLOPS.
  // - kvBlocks 3430: 0.9 × 22.07 GiB − 15.26 GiB weights − ~1.0 GiB profile-run activation peak
  //   (sampler over 256 dummy rows × 152,064 vocab) − ~0.25 GiB NCCL/cuBLAS = 3.35 GiB of 1 MiB
  //   blocks (16 tokens × 64 KiB).
  "qwq-32b-4xa10": {
    name: "qwq-32b-4xa10", fixedMs: 44, perSeqMs: 0.3, perContextTokenMs: 0.00014, perPrefillTokenMs: 0.4, attentionPairMs: 5.2e-6,
    requestOverheadMs: 100, maxNumSeqs: 256, maxNumBatchedTokens: 2048, kvBlocks: 3430, blockSize: 16, maxLoras: 4,
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
