// The filter's decision counters in Envoy's stats store: on the admin endpoint as
// `wasmcustom.infergate.<name>` (summed over worker threads), so an operator can see what it
// decided without reading logs. The names below are the contract with the dashboard and the
// README (test/unit/contract.test.ts reads them from this file). Requests per endpoint are
// Envoy's own per-endpoint cluster stats, which are freed with the endpoint; counters defined
// here live as long as the VM, so none is named after an endpoint.
import { defineMetric, incrementMetric, log, LogLevel, MetricType, Status } from "./host/api";

export const COUNTER_PREFIX = "infergate.";
/** Requests routed to an endpoint. */
export const ROUTED = "routed";
/** Requests whose model was rewritten to a different target model. */
export const REWRITTEN = "rewritten";
/** Requests that went to their prompt prefix's affinity endpoint. */
export const AFFINITY_ROUTED = "affinity_routed";
/** Requests on a mirrored route given a mirror endpoint (Envoy then copies its share of them; the
 * copies themselves are counted in the mirror cluster's own stats). */
export const MIRROR_PICKED = "mirror_picked";
/** Requests answered by the filter itself: `rejected.<status>`. */
export const REJECTED = "rejected.";

const ids = new Map<string, u32>();

export function count(name: string): void {
  let id: u32 = 0;
  if (ids.has(name)) {
    id = ids.get(name);
  } else {
    const defined = defineMetric(MetricType.Counter, COUNTER_PREFIX + name);
    if (defined.status != Status.Ok) {
      log(LogLevel.Warn, "infergate: cannot define counter " + name + ": status " + defined.status.toString());
      return;
    }
    id = defined.id;
    ids.set(name, id);
  }
  const status = incrementMetric(id, 1);
  if (status != Status.Ok) log(LogLevel.Warn, "infergate: cannot increment counter " + name + ": status " + status.toString());
}
