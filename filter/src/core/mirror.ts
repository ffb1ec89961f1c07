// Endpoints for the copies an HTTPRoute's RequestMirror filters send. Pure: no host imports.
import { LoadSource, VM_MEMORY } from "./decide";
import { endpointCosts, pickEndpoint, prefixHash, PrefixMemory, Random } from "./pick";
import { Route, Snapshot } from "./snapshot";

/**
 * One endpoint of each pool the route mirrors to, picked like a primary endpoint (pushed score,
 * this proxy's load, prefix affinity), as `ip:port,ip:port`. Each mirror cluster's override_host
 * takes the first address that is one of its own endpoints, so one header serves every mirror.
 * A pool with no endpoint adds nothing (its cluster then balances by itself). Mirrored copies are
 * not added to this proxy's load: the filter never sees them finish. A copy does carry the prompt
 * to the mirror endpoint, so the pick is recorded in the prefix memory like a primary one.
 */
export function mirrorDestinations(snapshot: Snapshot, route: Route, target: string, prompt: StaticArray<u8>, promptLength: i32, loads: LoadSource, random: Random, memory: PrefixMemory = VM_MEMORY): string {
  let out = "";
  const tuning = snapshot.tuning;
  const hash = prefixHash(prompt, promptLength, tuning.affinityBlocks);
  for (let i = 0; i < route.mirrors.length; i++) {
    const pool = route.mirrors[i];
    const costs = endpointCosts(pool, loads.loadsOf(pool), tuning, target);
    const pick = pickEndpoint(pool, costs, hash, tuning, random, memory);
    if (pick.index < 0) continue;
    if (out.length > 0) out += ",";
    out += pool.endpoints[pick.index].address;
  }
  return out;
}
