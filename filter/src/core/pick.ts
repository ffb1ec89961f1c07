// Routing decisions: the weighted target-model choice and the endpoint pick. Pure module: the
// random source and the proxy's own load counters are passed in, so tests can drive them and
// Envoy feeds them from the clock and shared data.
import { saturatingAdd, saturatingMul } from "./saturating";
import { Endpoint, Model, Pool, Target, Tuning } from "./snapshot";

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

/** What this proxy knows of an endpoint beyond the last push: its own requests still on it. */
export class LocalLoad {
  /** Prompt bytes of requests sent there that have not produced a first byte yet. */
  pendingPromptBytes: i64 = 0;
  /** Requests sent there and not finished. */
  inflight: i64 = 0;
}

/**
 * The expected wait for a new request, in bytes of prompt ahead of it: prompts this proxy sent
 * that are still in prefill, plus a charge per request decoding there, plus the pushed score's
 * shortfall (which carries the replica's own queue and KV pressure, including other proxies' load).
 */
export function endpointCost(e: Endpoint, local: LocalLoad, t: Tuning): i64 {
  // Saturating: no input (a client's body, a counter, a pushed weight) can wrap a cost negative.
  const shortfall = saturatingMul(1000 - min<i64>(1000, max<i64>(0, e.score)), t.scoreWeight);
  const inflight = saturatingMul(max<i64>(0, local.inflight), t.inflightWeight);
  return saturatingAdd(saturatingAdd(shortfall, max<i64>(0, local.pendingPromptBytes)), inflight);
}

/** splitmix64's finalizer: a well-mixed 64-bit value from two hashes. */
export function mix64(a: u64, b: u64): u64 {
  let z = a ^ (b + 0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

/** Rendezvous hashing: every proxy and worker maps the same prefix to the same endpoint. */
export function affinityEndpoint(pool: Pool, prefixHash: u64): i32 {
  let best = -1;
  let bestWeight: u64 = 0;
  for (let i = 0; i < pool.endpoints.length; i++) {
    const w = mix64(prefixHash, pool.endpoints[i].hash);
    if (best < 0 || w > bestWeight) { best = i; bestWeight = w; }
  }
  return best;
}

/** The picked endpoint's index (-1: none), and whether it is the prefix's affinity endpoint. */
export class Pick {
  constructor(public index: i32, public affinity: bool) {}
}

/**
 * Picks an endpoint: the prefix-affinity endpoint while it is not overloaded (its cost within
 * `affinityBoundBytes` of the cheapest), otherwise one of the near-best endpoints at random, so a
 * burst between two pushes spreads instead of piling onto the single best-looking endpoint.
 * `costs[i]` is the cost of `pool.endpoints[i]`; `prefixHash` 0 means no affinity.
 */
export function pickEndpoint(pool: Pool, costs: StaticArray<i64>, prefixHash: u64, t: Tuning, random: Random): Pick {
  const n = pool.endpoints.length;
  if (n == 0) return new Pick(-1, false);
  let cheapest = i64.MAX_VALUE;
  for (let i = 0; i < n; i++) if (costs[i] < cheapest) cheapest = costs[i];
  let affine = -1;
  if (prefixHash != 0) {
    affine = affinityEndpoint(pool, prefixHash);
    if (costs[affine] <= saturatingAdd(cheapest, t.affinityBoundBytes)) return new Pick(affine, true);
  }
  const slack = max<i64>(t.nearBestBytes, saturatingMul(cheapest, t.nearBestPercent) / 100);
  const bound = saturatingAdd(cheapest, slack);
  let chosen = -1;
  let seen: u64 = 0;
  for (let i = 0; i < n; i++) {
    if (costs[i] > bound) continue;
    seen++;
    if (random.below(seen) == 0) chosen = i; // uniform among the near-best (reservoir sampling)
  }
  // The random near-best pick may still land on the affinity endpoint.
  return new Pick(chosen, chosen >= 0 && chosen == affine);
}

/**
 * Costs of every endpoint for a request for `model`. When `model` is a LoRA adapter some endpoint
 * reports, endpoints without it pay to load it (a free slot) or to wait for a slot (none free).
 */
export function endpointCosts(pool: Pool, local: Array<LocalLoad>, t: Tuning, model: string): StaticArray<i64> {
  const costs = new StaticArray<i64>(pool.endpoints.length);
  const adapter = isKnownAdapter(pool, model);
  for (let i = 0; i < costs.length; i++) {
    const e = pool.endpoints[i];
    costs[i] = endpointCost(e, local[i], t);
    if (adapter && !e.loras.includes(model)) costs[i] = saturatingAdd(costs[i], e.loraFree == 0 ? t.loraFullBytes : t.loraLoadBytes);
  }
  return costs;
}

function isKnownAdapter(pool: Pool, model: string): bool {
  for (let i = 0; i < pool.endpoints.length; i++) if (pool.endpoints[i].loras.includes(model)) return true;
  return false;
}

/** The chosen endpoint first, then up to `extra` others by rising cost: Envoy's override_host
 * policy tries them in order when a connection to the first fails. */
export function withFallbacks(costs: StaticArray<i64>, chosen: i32, extra: i32): Array<i32> {
  const order: Array<i32> = [chosen];
  for (let k = 0; k < extra; k++) {
    let next = -1;
    for (let i = 0; i < costs.length; i++) {
      if (order.includes(i)) continue;
      if (next < 0 || costs[i] < costs[next]) next = i;
    }
    if (next < 0) break;
    order.push(next);
  }
  return order;
}

/** Chained hash of the first `blocks` 64-byte blocks of the prompt prefix; 0 if not one block. */
export function prefixHash(bytes: StaticArray<u8>, length: i32, blocks: i32): u64 {
  const full = min(length / 64, blocks);
  if (full == 0) return 0;
  let h: u64 = 0xcbf29ce484222325;
  for (let i = 0; i < full * 64; i++) {
    h ^= <u64>bytes[i];
    h *= 0x100000001b3;
  }
  return h == 0 ? 1 : h;
}

export function isSaturated(pool: Pool): bool {
  return pool.saturation >= 1000;
}
