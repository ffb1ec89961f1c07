// Workload shapes the policy lab (and bench/run.ts) can run. Each fixes the requests (from a seed),
// how they arrive, how fast each replica is and how many Envoys front the pool.
import { profileNamed, type StepProfile } from "../../sim/step-model.ts";
import { buildTenantWorkload, buildWorkload, SEED_WORKLOAD, type WorkloadRequest } from "../workload.ts";

export type Arrival =
  | { kind: "closed"; concurrency: number }
  /** Open loop: Poisson arrivals at `ratePerS` (model time), however many are in flight. */
  | { kind: "poisson"; ratePerS: number };

export interface Shape {
  name: string;
  description: string;
  numPrompts: number;
  arrival: Arrival;
  /** Step-time factor per replica (1: the calibrated profile; 1.6: a 1.6× slower GPU generation). */
  slowdown: number[];
  /** Envoy processes in front of the pool, each with its own local counts (the client spreads
   * requests over them at random). */
  proxies: number;
  build(seed: number, numPrompts: number): WorkloadRequest[];
}

export const REPLICAS = 5;
export const PROFILE = "qwq-32b-4xa10";

/** The seed workload's request rate at capacity: the calibrated round-robin closed loop's median
 * output throughput (947 tok/s, bench/CALIBRATION.md) over the mean output of 1,800 tokens. Open-loop
 * shapes arrive at a fraction of this. */
export const SEED_CAPACITY_REQ_PER_S = 947 / 1800;

const seed = (s: number, n: number): WorkloadRequest[] => buildWorkload({ ...SEED_WORKLOAD, numPrompts: n, seed: s });
const equal = (): number[] => Array(REPLICAS).fill(1);

function poisson(fraction: number, numPrompts: number): Shape {
  return {
    name: fraction > 1 ? `overload-${fraction}` : `poisson-${fraction}`,
    description: `the seed's requests in an open loop, Poisson arrivals at ${fraction}× capacity (${(fraction * SEED_CAPACITY_REQ_PER_S).toFixed(3)} req/s), ${numPrompts} prompts${fraction > 1 ? " (bounded: arrivals stop after them)" : ""}`,
    numPrompts, arrival: { kind: "poisson", ratePerS: fraction * SEED_CAPACITY_REQ_PER_S }, slowdown: equal(), proxies: 1, build: seed,
  };
}

export const SHAPES: Record<string, Shape> = {
  seed: {
    name: "seed", description: "the seed's benchmark: 60 concurrent (closed loop), 1000-token shared prefix, input prefix + U[800, 4000], output U[600, 3000]",
    numPrompts: 3000, arrival: { kind: "closed", concurrency: 60 }, slowdown: equal(), proxies: 1, build: seed,
  },
  tenants: {
    name: "tenants", description: "16 tenants (Zipf 1 popularity), each with its own 2000-token system prompt, user part U[400, 2000], output U[600, 3000]; 60 concurrent",
    numPrompts: 3000, arrival: { kind: "closed", concurrency: 60 }, slowdown: equal(), proxies: 1,
    build: (s, n) => buildTenantWorkload({ numPrompts: n, tenants: 16, zipf: 1, systemLen: 2000, inputLen: 2000, outputLen: 3000, rangeRatio: 0.2, seed: s }),
  },
  "no-prefix": {
    name: "no-prefix", description: "no shared prefix: input U[1000, 5000], output U[600, 3000]; 60 concurrent",
    numPrompts: 3000, arrival: { kind: "closed", concurrency: 60 }, slowdown: equal(), proxies: 1,
    build: (s, n) => buildWorkload({ ...SEED_WORKLOAD, prefixLen: 0, inputLen: 5000, numPrompts: n, seed: s }),
  },
  "mixed-gpu": {
    name: "mixed-gpu", description: "the seed's workload on replicas of unequal speed: two of five take 1.6× as long per step",
    numPrompts: 3000, arrival: { kind: "closed", concurrency: 60 }, slowdown: [1, 1, 1, 1.6, 1.6], proxies: 1, build: seed,
  },
  "two-proxies": {
    name: "two-proxies", description: "the seed's workload through two Envoys (2 workers each), which share no local counts",
    numPrompts: 3000, arrival: { kind: "closed", concurrency: 60 }, slowdown: equal(), proxies: 2, build: seed,
  },
  "poisson-0.7": poisson(0.7, 2000),
  "poisson-0.9": poisson(0.9, 2000),
  "overload-1.2": poisson(1.2, 1500),
};

export function shapeNamed(name: string): Shape {
  const s = SHAPES[name];
  if (!s) throw new Error(`unknown workload shape ${name}; known: ${Object.keys(SHAPES).join(", ")}`);
  return s;
}

/** The calibrated profile with every step-time term multiplied by `factor` (the request overhead,
 * KV capacity and scheduler limits stay). */
export function slowedProfile(factor: number, base: StepProfile = profileNamed(PROFILE)): StepProfile {
  if (factor === 1) return base;
  return {
    ...base, name: `${base.name}×${factor}`,
    fixedMs: base.fixedMs * factor, perSeqMs: base.perSeqMs * factor, perContextTokenMs: base.perContextTokenMs * factor,
    perPrefillTokenMs: base.perPrefillTokenMs * factor, attentionPairMs: (base.attentionPairMs ?? 0) * factor,
  };
}
