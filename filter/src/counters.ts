// The filter's decision counters in Envoy's stats store: on the admin endpoint as
// `wasmcustom.infergate.<name>` (summed over worker threads), and in /stats/prometheus as
// `infergate_<name>`, so an operator can see what it decided without reading logs. The names
// follow Prometheus conventions (counters end in `_total`). The proxy-wasm ABI gives a counter no
// labels, so each status the filter answers with has a counter of its own. The names below are
// the contract with the dashboard, the alerting rules and the README (test/unit/contract.test.ts
// reads them from this file). Requests per endpoint are Envoy's own per-endpoint cluster stats,
// which are freed with the endpoint; counters defined here live as long as the VM, so none is
// named after an endpoint.
import { defineMetric, incrementMetric, log, LogLevel, MetricType, Status } from "./host/api";

export const COUNTER_PREFIX = "infergate.";
/** Requests routed to an endpoint. */
export const ROUTED = "routed_total";
/** Requests whose model was rewritten to a different target model. */
export const REWRITTEN = "rewritten_total";
/** Requests that went to their prompt prefix's affinity endpoint. */
export const AFFINITY_ROUTED = "affinity_routed_total";
/** Requests on a mirrored route given a mirror endpoint (Envoy then copies its share of them; the
 * copies themselves are counted in the mirror cluster's own stats). */
export const MIRROR_PICKED = "mirror_picked_total";
/** Requests on a pool an endpoint picker routes that were served by another endpoint than this
 * filter picked (the picker chose it, or a retry moved on): their load moved there. */
export const SERVED_ELSEWHERE = "served_elsewhere_total";
/** Loads from the load channel applied (load_channel.ts), counted by every VM (each worker's and
 * the main thread's). */
export const LOAD_APPLIED = "load_applied_total";
/** Loads from the load channel that did not decode or parse: the last good load stays. */
export const LOAD_REJECTED = "load_rejected_total";
/** Requests answered by the filter itself: `rejected_<status>_total`. */
export const REJECTED = "rejected_";
export const REJECTED_SUFFIX = "_total";
/** Every status the filter answers with (core/errors.ts). */
export const REJECTED_STATUSES = "400 404 413 415 429 500 503";

const ids = new Map<string, u32>();

function id(name: string): i64 {
  if (ids.has(name)) return ids.get(name);
  const defined = defineMetric(MetricType.Counter, COUNTER_PREFIX + name);
  if (defined.status != Status.Ok) {
    log(LogLevel.Warn, "infergate: cannot define counter " + name + ": status " + defined.status.toString());
    return -1;
  }
  ids.set(name, defined.id);
  return defined.id;
}

/** Defines every counter, so each is exported (at 0) before its first increment: a rate over a
 * counter that appears at 1 misses that first request, and an alert on a missing series never fires. */
export function defineCounters(): void {
  id(ROUTED);
  id(REWRITTEN);
  id(AFFINITY_ROUTED);
  id(MIRROR_PICKED);
  id(SERVED_ELSEWHERE);
  id(LOAD_APPLIED);
  id(LOAD_REJECTED);
  const statuses = REJECTED_STATUSES.split(" ");
  for (let i = 0; i < statuses.length; i++) id(REJECTED + statuses[i] + REJECTED_SUFFIX);
}

export function count(name: string): void {
  const metric = id(name);
  if (metric < 0) return;
  const status = incrementMetric(<u32>metric, 1);
  if (status != Status.Ok) log(LogLevel.Warn, "infergate: cannot increment counter " + name + ": status " + status.toString());
}

/** Counts a request the filter answered itself with `status`. */
export function countRejected(status: u32): void {
  count(REJECTED + status.toString() + REJECTED_SUFFIX);
}
