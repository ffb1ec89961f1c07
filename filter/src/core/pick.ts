// Routing decisions: the weighted target-model choice and the endpoint pick. Pure module: the
// random source is passed in, so tests can drive it and Envoy seeds it from the clock.
import { Endpoint, Model, Pool, Target } from "./snapshot";

/** xorshift64* — small, fast, and good enough for load spreading (not for secrets). */
export class Random {
  private state: u64;
  constructor(seed: u64) { this.state = seed == 0 ? 0x9e3779b97f4a7c15 : seed; }
  next(): u64 {
    let x = this.state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    this.state = x;
    return x * 0x2545f4914f6cdd1d;
  }
  /** Uniform integer in [0, bound); bound must be positive. */
  below(bound: u64): u64 { return (this.next() >> 11) % bound; }
}

/** Picks a target model by weight; null when every weight is zero. */
export function chooseTarget(model: Model, random: Random): Target | null {
  if (model.totalWeight <= 0) return null;
  let roll = <i64>random.below(<u64>model.totalWeight);
  for (let i = 0; i < model.targets.length; i++) {
    const t = model.targets[i];
    if (roll < t.weight) return t;
    roll -= t.weight;
  }
  return null;
}

/** The endpoint with the best pushed score; ties are broken uniformly at random. */
export function pickEndpoint(pool: Pool, random: Random): Endpoint | null {
  let best: Endpoint | null = null;
  let ties: u64 = 0;
  for (let i = 0; i < pool.endpoints.length; i++) {
    const e = pool.endpoints[i];
    if (best === null || e.score > best.score) { best = e; ties = 1; continue; }
    if (e.score == best.score) {
      ties++;
      if (random.below(ties) == 0) best = e; // reservoir sampling over the tied endpoints
    }
  }
  return best;
}
