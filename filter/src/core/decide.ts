// The routing decision, whole: given the snapshot, the requested model, the prompt's leading
// bytes and this proxy's own load on each endpoint, either an error reply or the target model and
// the ordered endpoints to try. Pure: no host imports. The filter calls it for every request
// Envoy routes (stream.ts), and core/exports.ts exposes the same compiled code to Node for tests
// and for the benchmark lab, so what is tested and simulated is what Envoy runs.
//
// Steps, in order (the random source is drawn in this order, so replays are exact):
//   1. the model must be in the snapshot (404);
//   2. a target model is drawn by weight (503 if every weight is 0);
//   3. a request whose priority (core/request.ts) is below what the pool's saturation admits is shed (429);
//   4. every endpoint of the pool gets a cost (pick.ts): the work ahead of the request there, in
//      bytes of prompt (queue, decode load, KV pressure), less a preference for endpoints that
//      recently got the same prompt prefix; one of the near-best is picked (503 if none);
//   5. up to FALLBACKS more endpoints follow it by rising cost, for Envoy to retry on.
// The one state decide() keeps is the prefix memory it is given: it records every pick there. Envoy
// passes none, so each worker's VM uses its own (VM_MEMORY), into which the filter also copies the
// other workers' picks (shared_load.ts), so that every worker knows where the proxy sent a prefix;
// tests and the lab pass their own.
import { ErrorReply, modelNotFound, noEndpoint, shed } from "./errors";
import { chooseTarget, endpointCosts, LocalLoad, pickEndpoint, prefixHash, PrefixMemory, Random, withFallbacks } from "./pick";
import { NO_CONTEXT, RequestContext, requestPriority, shouldShed } from "./request";
import { Pool, Snapshot } from "./snapshot";

/** This VM's prefix memory (one per Envoy worker thread; shared_load.ts adds the other workers' picks). */
export const VM_MEMORY = new PrefixMemory();

/** Endpoints after the chosen one in the destination list, for Envoy to retry on. */
export const FALLBACKS: i32 = 2;

/** Where this proxy's own load on endpoints comes from: Envoy's shared data inside the filter,
 * plain arrays in tests and in the lab. */
export abstract class LoadSource {
  /** This proxy's load on every endpoint of `pool`, in the pool's endpoint order. */
  abstract loadsOf(pool: Pool): Array<LocalLoad>;
}

/** A LoadSource with no load anywhere. */
export class NoLoad extends LoadSource {
  loadsOf(pool: Pool): Array<LocalLoad> {
    const out = new Array<LocalLoad>(pool.endpoints.length);
    for (let i = 0; i < out.length; i++) out[i] = new LocalLoad();
    return out;
  }
}

export class Decision {
  /** Set when the request is answered by the filter itself; nothing else is then meaningful. */
  reply: ErrorReply | null = null;
  /** The model the request is sent with (differs from the requested one: rewrite it). */
  target: string = "";
  pool: Pool | null = null;
  /** Indexes into `pool.endpoints`: the chosen endpoint first, then fallbacks. */
  endpoints: Array<i32> = new Array<i32>();
  /** The chosen endpoint recently got the same prompt prefix from this proxy. */
  affinity: bool = false;
  /** The prompt's prefix hash (pick.ts prefixHash; 0: none), recorded in the prefix memory. */
  prefix: u64 = 0;

  static rejected(reply: ErrorReply): Decision {
    const d = new Decision();
    d.reply = reply;
    return d;
  }

  /** `ip:port,ip:port,...` for the destination header. */
  destinations(): string {
    const pool = this.pool!;
    let out = "";
    for (let i = 0; i < this.endpoints.length; i++) {
      if (i > 0) out += ",";
      out += pool.endpoints[this.endpoints[i]].address;
    }
    return out;
  }

  /** The chosen endpoint's address. */
  chosen(): string {
    return this.pool!.endpoints[this.endpoints[0]].address;
  }
}

export function decide(snapshot: Snapshot, requested: string, prompt: StaticArray<u8>, promptLength: i32, loads: LoadSource, random: Random, request: RequestContext = NO_CONTEXT, memory: PrefixMemory = VM_MEMORY): Decision {
  const model = snapshot.model(requested);
  if (model === null) return Decision.rejected(modelNotFound(requested));
  const target = chooseTarget(model, random);
  if (target === null) return Decision.rejected(noEndpoint(requested, "every target model has weight 0"));
  const pool = request.pool !== null ? request.pool! : model.pool;
  if (shouldShed(requestPriority(snapshot, model, pool, request.objective), pool)) return Decision.rejected(shed(requested, pool.name));
  const tuning = snapshot.tuning;
  const costs = endpointCosts(pool, loads.loadsOf(pool), tuning, target.name);
  const prefix = prefixHash(prompt, promptLength, tuning.affinityBlocks);
  const pick = pickEndpoint(pool, costs, prefix, tuning, random, memory);
  if (pick.index < 0) return Decision.rejected(noEndpoint(requested, "pool " + pool.name + " has no ready endpoint"));
  const d = new Decision();
  d.target = target.name;
  d.pool = pool;
  d.endpoints = withFallbacks(costs, pick.index, FALLBACKS);
  d.affinity = pick.affinity;
  d.prefix = prefix;
  return d;
}
