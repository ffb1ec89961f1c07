// Prometheus metrics about what the extension server knows and pushes.
import { Counter, Gauge, Registry } from "prom-client";

export class ServerMetrics {
  readonly registry = new Registry();
  readonly configReloads = new Counter({ name: "infergate_config_reloads_total", help: "Configuration loads by result (ok, rejected).", labelNames: ["result"], registers: [this.registry] });
  readonly snapshotVersion = new Gauge({ name: "infergate_snapshot_version", help: "Version of the routing snapshot being served.", registers: [this.registry] });
  readonly poolEndpoints = new Gauge({ name: "infergate_pool_endpoints", help: "Endpoints known per pool.", labelNames: ["pool"], registers: [this.registry] });
  readonly xdsResponses = new Counter({ name: "infergate_xds_responses_total", help: "xDS responses from Envoy by type and result (ack, nack).", labelNames: ["type", "result"], registers: [this.registry] });
}
