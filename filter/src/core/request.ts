// What the request itself adds to the routing decision, beyond its model and prompt: the pool an
// HTTPRoute chose, and the InferenceObjective it names (mirror.ts: the pools it is mirrored to). Pure:
// no host imports. stream.ts fills a RequestContext from Envoy (the cluster the route chose, the
// objective header); decide() uses it; the same functions run in Node for tests.
//
// Priority and shedding. A request's priority is its InferenceObjective's (named by
// x-gateway-inference-objective, in the pool the request goes to), else its model's criticality:
// Critical 1, Standard 0, Sheddable -1. A priority of 0 or more is never shed. A negative one is
// shed (429) once the pool's saturation reaches its threshold: 1.0 for -1, as in the Inference
// Extension, and 0.1 lower for each step below, down to 0.5 (-6 and lower). So under a rising
// saturation the lowest priorities go first, and a higher priority is never shed while a lower one
// is still admitted.
import { Random } from "./pick";
import { Criticality, Model, Pool, Route, Snapshot } from "./snapshot";

/** Saturation (×1000) at which priority -1 is shed. */
export const SHED_AT: i64 = 1000;
/** How much earlier (×1000) each further step below -1 is shed. */
export const SHED_STEP: i64 = 100;
/** No priority is shed below this saturation (×1000). */
export const SHED_FLOOR: i64 = 500;

export class RequestContext {
  /** The pool the request's route chose (null: the model's own pool). */
  pool: Pool | null = null;
  /** The InferenceObjective the request names ("" for none). */
  objective: string = "";
}

export const NO_CONTEXT = new RequestContext();

export function criticalityPriority(c: Criticality): i32 {
  if (c == Criticality.Critical) return 1;
  if (c == Criticality.Sheddable) return -1;
  return 0;
}

/** The objective's priority when it names one in `pool`, else the model's criticality's. An
 * unknown objective changes nothing: a client cannot invent a priority. */
export function requestPriority(snapshot: Snapshot, model: Model, pool: Pool, objective: string): i32 {
  if (objective.length > 0) {
    const key = pool.name + " " + objective;
    if (snapshot.objectives.has(key)) return snapshot.objectives.get(key);
  }
  return criticalityPriority(model.criticality);
}

/** The saturation (×1000) from which requests of this priority are shed; never for priority ≥ 0. */
export function shedThreshold(priority: i32): i64 {
  if (priority >= 0) return i64.MAX_VALUE;
  return max<i64>(SHED_FLOOR, SHED_AT + <i64>(priority + 1) * SHED_STEP);
}

export function shouldShed(priority: i32, pool: Pool): bool {
  return pool.saturation >= shedThreshold(priority);
}

/** One of the route's pools, by weight (the snapshot guarantees a positive total). */
export function chooseRoutePool(route: Route, random: Random): Pool {
  let roll = <i64>random.below(<u64>route.totalWeight);
  for (let i = 0; i < route.pools.length; i++) {
    if (roll < route.weights[i]) return route.pools[i];
    roll -= route.weights[i];
  }
  return route.pools[route.pools.length - 1];
}
