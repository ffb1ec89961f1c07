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

/** The cache does not fill to exactly 1000‰ before vLLM preempts; this keeps the KV term finite. */
const KV_SLACK_PERMILLE: i64 = 20;

/** KV pressure in bytes: 0 up to the threshold, then kvBytes × (kv − threshold) / (1000 − kv + 20):
 * with the threshold at 800‰, 0.8 × kvBytes at 900‰, 2.1 × at 950‰, 10 × at 1000‰. A full cache
 * means a new prompt waits for blocks and decodes preempt the newest request, so the cost keeps
 * rising as the cache fills, with no cap short of saturation. */
export function kvPressure(kvPermille: i64, t: Tuning): i64 {
  const kv = min<i64>(1000, max<i64>(0, kvPermille));
  const over = kv - t.kvThreshold;
  if (over <= 0) return 0;
  return saturatingMul(t.kvBytes, over) / (1000 - kv + KV_SLACK_PERMILLE);
}

/**
 * The expected work ahead of a new request on `e`, in bytes of prompt waiting for prefill:
 * - the queue: this proxy's prompts there without a first byte yet, or the engine's own waiting
 *   requests at `waitingBytes` each, whichever is more (the engine's count is older but includes
 *   other proxies' requests and preempted ones; this proxy's count is fresh; taking the larger one
 *   never counts the same request twice);
 * - `inflightWeight` per request of this proxy still running there;
 * - KV pressure from the engine's cache use (kvPressure).
 * An endpoint line without `waiting` and `kv` (an older server) is costed as before them: its
 * pushed score's shortfall, plus the prompts pending and the requests in flight.
 */
export function endpointCost(e: Endpoint, local: LocalLoad, t: Tuning): i64 {
  // Saturating: no input (a client's body, a counter, a pushed value) can wrap a cost negative.
  const pending = max<i64>(0, local.pendingPromptBytes);
  const inflight = saturatingMul(max<i64>(0, local.inflight), t.inflightWeight);
  if (e.waiting < 0 || e.kvPermille < 0) {
    const shortfall = saturatingMul(1000 - min<i64>(1000, max<i64>(0, e.score)), t.scoreWeight);
    return saturatingAdd(saturatingAdd(shortfall, pending), inflight);
  }
  const queue = max<i64>(pending, saturatingMul(e.waiting, t.waitingBytes));
  return saturatingAdd(saturatingAdd(queue, inflight), kvPressure(e.kvPermille, t));
}

/** splitmix64's finalizer: a well-mixed 64-bit value from two hashes. */
export function mix64(a: u64, b: u64): u64 {
  let z = a ^ (b + 0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

/** Slots of the prefix memory (direct-mapped: a collision only forgets one placement). */
const MEMORY_SLOTS: i32 = 8192;

/**
 * Where this proxy recently sent each prompt prefix. An endpoint "holds" a prefix if it got a
 * request with that prefix within the endpoint's last `affinityMemory` requests from here: by then
 * its prefix cache has likely turned over. One per Envoy worker in the filter (decide.ts), one per
 * router in the lab; decide() records every pick in the memory it is given.
 */
export class PrefixMemory {
  /** Per slot: mix64(prefix, endpoint) of the placement it holds (0: empty), and the endpoint's
   * request count when it was made. */
  private pairs: StaticArray<u64> = new StaticArray<u64>(MEMORY_SLOTS);
  private stamps: StaticArray<i64> = new StaticArray<i64>(MEMORY_SLOTS);
  /** Requests this proxy sent to each endpoint (by address hash). */
  private sent: Map<u64, i64> = new Map<u64, i64>();

  private sentTo(endpoint: u64): i64 { return this.sent.has(endpoint) ? this.sent.get(endpoint) : 0; }

  /** Whether `endpoint` got `prefix` within its last `window` requests from here. */
  holds(prefix: u64, endpoint: u64, window: i64): bool {
    const pair = mix64(prefix, endpoint) | 1;
    const slot = <i32>(pair % <u64>MEMORY_SLOTS);
    // sent − stamp: the requests to that endpoint since this placement, the placement included.
    return this.pairs[slot] == pair && this.sentTo(endpoint) - this.stamps[slot] <= window;
  }

  /** `endpoint` was picked for a request with `prefix` (0: no prefix; only counted). */
  record(prefix: u64, endpoint: u64): void {
    const count = this.sentTo(endpoint);
    if (prefix != 0) {
      const pair = mix64(prefix, endpoint) | 1;
      const slot = <i32>(pair % <u64>MEMORY_SLOTS);
      this.pairs[slot] = pair;
      this.stamps[slot] = count;
    }
    this.sent.set(endpoint, count + 1);
  }
}

/** The picked endpoint's index (-1: none), and whether it was picked for its prefix. */
export class Pick {
  constructor(public index: i32, public affinity: bool) {}
}

/**
 * Picks an endpoint. With a prompt prefix, endpoints this proxy recently sent it to (still likely to
 * hold it in their prefix cache) are preferred: the others cost up to `affinityBytes` more (less the
 * more endpoints hold it; nothing when none or all do). Then
 * the near-best endpoints (within `nearBestBytes` or `nearBestPercent` of the cheapest) are the
 * candidates, so stale or tied costs do not pile a burst on one endpoint: with a prefix, the one
 * ranked highest for it by rendezvous hashing (so every worker and proxy places a new prefix alike);
 * without, one at random. `costs[i]` is the cost of `pool.endpoints[i]` before affinity.
 */
export function pickEndpoint(pool: Pool, costs: StaticArray<i64>, prefixHash: u64, t: Tuning, random: Random, memory: PrefixMemory): Pick {
  const n = pool.endpoints.length;
  if (n == 0) return new Pick(-1, false);
  const held = new StaticArray<bool>(n);
  let holders = 0;
  if (prefixHash != 0 && t.affinityBytes > 0) {
    for (let i = 0; i < n; i++) {
      held[i] = memory.holds(prefixHash, pool.endpoints[i].hash, t.affinityMemory);
      if (held[i]) holders++;
    }
  }
  // The fewer endpoints hold the prefix, the more a miss elsewhere costs in the long run; a prefix
  // most of the pool holds is cheap to add to one more, so an endpoint without it (a new one, say)
  // is not shut out: its penalty shrinks to affinityBytes / (n − 1) when it is the only one.
  const penalty = holders > 0 && holders < n ? saturatingMul(t.affinityBytes, <i64>(n - holders)) / <i64>(n - 1) : 0;
  const adjusted = new StaticArray<i64>(n);
  let cheapest = i64.MAX_VALUE;
  for (let i = 0; i < n; i++) {
    adjusted[i] = held[i] ? costs[i] : saturatingAdd(costs[i], penalty);
    if (adjusted[i] < cheapest) cheapest = adjusted[i];
  }
  const slack = max<i64>(t.nearBestBytes, saturatingMul(cheapest, t.nearBestPercent) / 100);
  const bound = saturatingAdd(cheapest, slack);
  let chosen = -1;
  let seen: u64 = 0;
  let best: u64 = 0;
  for (let i = 0; i < n; i++) {
    if (adjusted[i] > bound) continue;
    if (prefixHash != 0) {
      const w = mix64(prefixHash, pool.endpoints[i].hash);
      if (chosen < 0 || w > best) { chosen = i; best = w; }
    } else {
      seen++;
      if (random.below(seen) == 0) chosen = i; // uniform among the near-best (reservoir sampling)
    }
  }
  const affinity = chosen >= 0 && held[chosen];
  if (chosen >= 0) memory.record(prefixHash, pool.endpoints[chosen].hash);
  return new Pick(chosen, affinity);
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
  const full = min(min(length, bytes.length) / 64, blocks);
  if (full == 0) return 0;
  let h: u64 = 0xcbf29ce484222325;
  for (let i = 0; i < full * 64; i++) {
    h ^= <u64>unchecked(bytes[i]); // i < full * 64 <= bytes.length
    h *= 0x100000001b3;
  }
  return h == 0 ? 1 : h;
}

export function isSaturated(pool: Pool): bool {
  return pool.saturation >= 1000;
}
