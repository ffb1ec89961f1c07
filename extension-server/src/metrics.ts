// Prometheus metrics about what the extension server knows and pushes.
import { Counter, Gauge, Registry } from "prom-client";
import type { RoutingConfig } from "./config/routing-config.ts";
import type { EndpointReading } from "./load/scraper.ts";
import type { Schedule } from "./scheduling/scheduler.ts";
import { endpointAddress } from "./snapshot.ts";

export class ServerMetrics {
  readonly registry = new Registry();
  readonly configReloads = new Counter({ name: "infergate_config_reloads_total", help: "Configuration loads by result (ok, rejected).", labelNames: ["result"], registers: [this.registry] });
  readonly snapshotVersion = new Gauge({ name: "infergate_snapshot_version", help: "Version of the routing snapshot being served.", registers: [this.registry] });
  readonly poolEndpoints = new Gauge({ name: "infergate_pool_endpoints", help: "Endpoints known per pool.", labelNames: ["pool"], registers: [this.registry] });
  readonly podsSkipped = new Gauge({ name: "infergate_pool_pods_skipped", help: "Pods the pool selects that are not endpoints, by reason (no-ip, invalid-ip, not-ready).", labelNames: ["pool", "reason"], registers: [this.registry] });
  readonly configProblems = new Gauge({ name: "infergate_config_problems", help: "Objects (or documents) left out of the current configuration; each is named in the log, and in its status in Kubernetes.", registers: [this.registry] });
  readonly snapshotRecordsDropped = new Counter({ name: "infergate_snapshot_records_dropped_total", help: "Snapshot records left out because a field was unsafe (a name with whitespace, a number that is not an integer); counted when a record starts being left out.", registers: [this.registry] });
  readonly snapshotPushes = new Counter({ name: "infergate_snapshot_pushes_total", help: "Routing snapshots pushed to Envoy over ECDS.", registers: [this.registry] });
  readonly endpointScore = new Gauge({ name: "infergate_endpoint_score", help: "Score (0-1000) pushed for each endpoint; absent when not routable.", labelNames: ["pool", "endpoint"], registers: [this.registry] });
  readonly endpointReady = new Gauge({ name: "infergate_endpoint_ready", help: "1 when the endpoint's metrics are fresh, else 0.", labelNames: ["pool", "endpoint"], registers: [this.registry] });
  readonly endpointWaiting = new Gauge({ name: "infergate_endpoint_waiting_requests", help: "Waiting requests the endpoint last reported.", labelNames: ["pool", "endpoint"], registers: [this.registry] });
  readonly endpointKvUsage = new Gauge({ name: "infergate_endpoint_kv_cache_usage", help: "KV-cache use (0-1) the endpoint last reported.", labelNames: ["pool", "endpoint"], registers: [this.registry] });
  readonly poolSaturation = new Gauge({ name: "infergate_pool_saturation", help: "Pool saturation (1 = saturated; Sheddable requests are shed).", labelNames: ["pool"], registers: [this.registry] });
  readonly moduleDownloads = new Counter({ name: "infergate_module_downloads_total", help: "Downloads of the filter module by Envoys on other hosts.", registers: [this.registry] });
  readonly xdsNamesIgnored = new Counter({ name: "infergate_xds_names_ignored_total", help: "Resource names xDS requests asked for that were not answered, by type and reason (unknown: nothing by that name is served; over-limit: beyond the names a request may list).", labelNames: ["type", "reason"], registers: [this.registry] });
  readonly xdsResponses = new Counter({ name: "infergate_xds_responses_total", help: "xDS responses from Envoy by type and result (ack, nack).", labelNames: ["type", "result"], registers: [this.registry] });

  /** The per-pool gauges of a new configuration; pools and endpoints it no longer has disappear. */
  recordConfig(config: RoutingConfig): void {
    for (const g of [this.poolEndpoints, this.podsSkipped, this.poolSaturation, this.endpointScore, this.endpointReady, this.endpointWaiting, this.endpointKvUsage]) g.reset();
    for (const p of config.pools) {
      this.poolEndpoints.set({ pool: p.id }, p.endpoints.length);
      for (const [reason, n] of Object.entries(p.skipped)) this.podsSkipped.set({ pool: p.id, reason }, n);
    }
    this.configProblems.set(config.problems.length);
  }

  /** The per-pool and per-endpoint gauges, from a schedule and the readings it came from. */
  recordSchedule(config: RoutingConfig, schedule: Schedule, readings: ReadonlyMap<string, Readonly<EndpointReading>>): void {
    for (const pool of config.pools) {
      const scheduled = schedule.get(pool.id);
      this.poolSaturation.set({ pool: pool.id }, scheduled?.saturation ?? 0);
      for (const e of pool.endpoints) {
        const endpoint = endpointAddress(e);
        const labels = { pool: pool.id, endpoint };
        const reading = readings.get(endpoint);
        const s = scheduled?.endpoints.get(endpoint);
        this.endpointReady.set(labels, s?.ready ? 1 : 0);
        this.endpointWaiting.set(labels, reading?.load?.waiting ?? 0);
        this.endpointKvUsage.set(labels, reading?.load?.kvUsage ?? 0);
        if (s?.score !== undefined) this.endpointScore.set(labels, s.score);
        else this.endpointScore.remove(labels);
      }
    }
  }
}
