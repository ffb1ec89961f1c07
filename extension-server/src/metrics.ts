// Prometheus metrics about what the extension server knows and pushes. Names follow Prometheus
// conventions: base units in the name (`_seconds`), `_total` on counters, `_ratio` for 0–1. The
// README's metrics table documents each one; test/unit/metrics.test.ts checks it against this file.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { RoutingConfig } from "./config/routing-config.ts";
import type { EndpointReading } from "./load/scraper.ts";
import type { Schedule } from "./scheduling/scheduler.ts";
import { endpointAddress } from "./snapshot.ts";

/** The xDS resource types, as the `type` label names them. */
export const XDS_KINDS = ["ecds", "eds"] as const;
export type XdsKind = typeof XDS_KINDS[number];

/** One open xDS stream, as the metrics see it. */
export interface XdsStream { type: XdsKind; node: string; rejected: boolean }

type Readings = ReadonlyMap<string, Readonly<EndpointReading>>;

export class ServerMetrics {
  readonly registry = new Registry();
  /** The configuration and readings of the last schedule: per-endpoint scrape metrics are read from them when scraped. */
  private latest?: { config: RoutingConfig; readings: Readings };
  private xdsStreams: () => readonly XdsStream[] = () => [];

  readonly configReloads = new Counter({ name: "infergate_config_reloads_total", help: "Configuration loads by result (ok, rejected).", labelNames: ["result"], registers: [this.registry] });
  readonly configLastReloadSuccessful = new Gauge({ name: "infergate_config_last_reload_successful", help: "1 if the last configuration load was accepted, 0 if it was rejected (the previous configuration keeps serving).", registers: [this.registry] });
  readonly snapshotVersion = new Gauge({ name: "infergate_snapshot_version", help: "Version of the routing snapshot being served (a new load does not change it).", registers: [this.registry] });
  readonly poolEndpoints = new Gauge({ name: "infergate_pool_endpoints", help: "Endpoints known per pool.", labelNames: ["pool"], registers: [this.registry] });
  readonly poolReadyEndpoints = new Gauge({ name: "infergate_pool_ready_endpoints", help: "Endpoints of the pool whose metrics are fresh. At 0 the filter balances over every endpoint blind (or answers 503 if the pool has none).", labelNames: ["pool"], registers: [this.registry] });
  readonly podsSkipped = new Gauge({ name: "infergate_pool_pods_skipped", help: "Pods the pool selects that are not endpoints, by reason (no-ip, invalid-ip, not-ready).", labelNames: ["pool", "reason"], registers: [this.registry] });
  readonly configProblems = new Gauge({ name: "infergate_config_problems", help: "Objects (or documents) left out of the current configuration; each is named in the log, and in its status in Kubernetes.", registers: [this.registry] });
  readonly snapshotRecordsDropped = new Counter({ name: "infergate_snapshot_records_dropped_total", help: "Snapshot records left out because a field was unsafe (a name with whitespace, a number that is not an integer); counted when a record starts being left out.", registers: [this.registry] });
  readonly snapshotPushes = new Counter({ name: "infergate_snapshot_pushes_total", help: "Pushes to Envoy over ECDS: a new routing snapshot, a new load (the live part), or both.", registers: [this.registry] });
  readonly endpointScore = new Gauge({ name: "infergate_endpoint_score", help: "Score (0-1000) pushed for each endpoint; absent when not routable.", labelNames: ["pool", "endpoint"], registers: [this.registry] });
  readonly endpointReady = new Gauge({ name: "infergate_endpoint_ready", help: "1 when the endpoint's metrics are fresh, else 0.", labelNames: ["pool", "endpoint"], registers: [this.registry] });
  readonly endpointWaiting = new Gauge({ name: "infergate_endpoint_waiting_requests", help: "Waiting requests the endpoint last reported.", labelNames: ["pool", "endpoint"], registers: [this.registry] });
  readonly endpointKvUsage = new Gauge({ name: "infergate_endpoint_kv_cache_usage_ratio", help: "KV-cache use (0-1) the endpoint last reported.", labelNames: ["pool", "endpoint"], registers: [this.registry] });
  readonly endpointScrapes = new Counter({
    name: "infergate_endpoint_scrapes_total", help: "Scrapes of the endpoint's /metrics by result (ok, error), since it joined the pool.", labelNames: ["pool", "endpoint", "result"], registers: [this.registry],
    collect: () => {
      this.endpointScrapes.reset();
      for (const { labels, reading } of this.latestReadings()) {
        this.endpointScrapes.inc({ ...labels, result: "ok" }, reading.scrapes - reading.failures);
        this.endpointScrapes.inc({ ...labels, result: "error" }, reading.failures);
      }
    },
  });
  readonly endpointLastScrapeSuccess = new Gauge({
    name: "infergate_endpoint_last_scrape_success_timestamp_seconds", help: "Unix time of the endpoint's last successful scrape; 0 if none has succeeded.", labelNames: ["pool", "endpoint"], registers: [this.registry],
    collect: () => {
      this.endpointLastScrapeSuccess.reset();
      const offsetMs = Date.now() - performance.now();
      for (const { labels, reading } of this.latestReadings()) {
        this.endpointLastScrapeSuccess.set(labels, Number.isFinite(reading.lastSuccess) ? (offsetMs + reading.lastSuccess) / 1000 : 0);
      }
    },
  });
  readonly poolSaturation = new Gauge({ name: "infergate_pool_saturation", help: "Pool saturation: the mean over endpoints of the larger of queue and KV use relative to their thresholds (>= 1: saturated, Sheddable requests are shed).", labelNames: ["pool"], registers: [this.registry] });
  readonly moduleDownloads = new Counter({ name: "infergate_module_downloads_total", help: "Downloads of the filter module by Envoys on other hosts.", registers: [this.registry] });
  /** Copies RequestMirror filters sent, per mirror cluster: known where this server runs Envoy
   * (standalone), read from Envoy's own stats for the cluster when the metrics are scraped. */
  readonly mirrorRequests = new Counter({
    name: "infergate_mirror_requests_total",
    help: "Mirrored copies per mirror cluster (standalone mode): sent = reached a mirror replica (Envoy's upstream_rq_total), failed = answered 5xx or never sent: connection failure, overflow (Envoy's upstream_rq_5xx).",
    labelNames: ["cluster", "result"], registers: [this.registry],
    collect: async () => { await this.collectMirrors(); },
  });
  /** Reads Envoy's mirror cluster stats; set when this server runs Envoy. */
  mirrorStats?: () => Promise<Map<string, { sent: number; failed: number }>>;
  readonly xdsNamesIgnored = new Counter({ name: "infergate_xds_names_ignored_total", help: "Resource names xDS requests asked for that were not answered, by type and reason (unknown: nothing by that name is served; over-limit: beyond the names a request may list).", labelNames: ["type", "reason"], registers: [this.registry] });
  readonly xdsResponses = new Counter({ name: "infergate_xds_responses_total", help: "xDS responses from Envoy by type and result (ack, nack).", labelNames: ["type", "result"], registers: [this.registry] });
  readonly xdsAckDuration = new Histogram({
    name: "infergate_xds_ack_duration_seconds", help: "From sending a version on an xDS stream to Envoy's ACK or NACK of it, by type.", labelNames: ["type"], registers: [this.registry],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  readonly xdsConnectedEnvoys: Gauge<"type"> = new Gauge({
    name: "infergate_xds_connected_envoys", help: "Envoys (distinct node ids) with an open xDS stream, by type.", labelNames: ["type"], registers: [this.registry],
    collect: (): void => this.collectXds(this.xdsConnectedEnvoys, () => true),
  });
  readonly xdsNackingEnvoys: Gauge<"type"> = new Gauge({
    name: "infergate_xds_nacking_envoys", help: "Connected Envoys whose answer to the latest version sent was a NACK: they keep running an older one.", labelNames: ["type"], registers: [this.registry],
    collect: (): void => this.collectXds(this.xdsNackingEnvoys, (s) => s.rejected),
  });

  /** Open load channel streams: one per filter root context per Envoy thread. */
  readonly loadStreams = new Gauge({
    name: "infergate_load_streams", help: "Open load channel streams (each infergate filter configuration on each Envoy thread holds one; 0 while Envoys route on their last load).", registers: [this.registry],
    collect: (): void => { this.loadStreams.set(this.countLoadStreams()); },
  });
  /** Where the load stream gauge is read from when scraped. */
  countLoadStreams: () => number = () => 0;

  constructor() {
    // Known label values start at 0, so a rate sees the first event and an alert sees "none".
    for (const result of ["ok", "rejected"]) this.configReloads.inc({ result }, 0);
    for (const type of XDS_KINDS) {
      for (const result of ["ack", "nack"]) this.xdsResponses.inc({ type, result }, 0);
      for (const reason of ["unknown", "over-limit"]) this.xdsNamesIgnored.inc({ type, reason }, 0);
      this.xdsAckDuration.zero({ type });
    }
    // The process: CPU, memory, event-loop lag (the loop that scrapes also serves xDS).
    collectDefaultMetrics({ register: this.registry });
  }

  /** Where the xDS stream gauges are read from when scraped. */
  watchXds(streams: () => readonly XdsStream[]): void {
    this.xdsStreams = streams;
  }

  private async collectMirrors(): Promise<void> {
    const read = this.mirrorStats;
    if (!read) return;
    let stats: Map<string, { sent: number; failed: number }>;
    try { stats = await read(); } catch { return; } // Envoy restarting: keep the last values
    this.mirrorRequests.reset();
    for (const [cluster, s] of stats) {
      this.mirrorRequests.inc({ cluster, result: "sent" }, s.sent);
      this.mirrorRequests.inc({ cluster, result: "failed" }, s.failed);
    }
  }

  /** The per-pool gauges of a new configuration; pools and endpoints it no longer has disappear. */
  recordConfig(config: RoutingConfig): void {
    for (const g of [this.poolEndpoints, this.poolReadyEndpoints, this.podsSkipped, this.poolSaturation, this.endpointScore, this.endpointReady, this.endpointWaiting, this.endpointKvUsage]) g.reset();
    for (const p of config.pools) {
      this.poolEndpoints.set({ pool: p.id }, p.endpoints.length);
      for (const [reason, n] of Object.entries(p.skipped)) this.podsSkipped.set({ pool: p.id, reason }, n);
    }
    this.configProblems.set(config.problems.length);
  }

  /** Records a configuration load (accepted or rejected). */
  recordReload(ok: boolean): void {
    this.configReloads.inc({ result: ok ? "ok" : "rejected" });
    this.configLastReloadSuccessful.set(ok ? 1 : 0);
  }

  /** The per-pool and per-endpoint gauges, from a schedule and the readings it came from. */
  recordSchedule(config: RoutingConfig, schedule: Schedule, readings: Readings): void {
    this.latest = { config, readings };
    for (const pool of config.pools) {
      const scheduled = schedule.get(pool.id);
      this.poolSaturation.set({ pool: pool.id }, scheduled?.saturation ?? 0);
      let ready = 0;
      for (const e of pool.endpoints) {
        const endpoint = endpointAddress(e);
        const labels = { pool: pool.id, endpoint };
        const reading = readings.get(endpoint);
        const s = scheduled?.endpoints.get(endpoint);
        if (s?.ready) ready++;
        this.endpointReady.set(labels, s?.ready ? 1 : 0);
        this.endpointWaiting.set(labels, reading?.load?.waiting ?? 0);
        this.endpointKvUsage.set(labels, reading?.load?.kvUsage ?? 0);
        if (s?.score !== undefined) this.endpointScore.set(labels, s.score);
        else this.endpointScore.remove(labels);
      }
      this.poolReadyEndpoints.set({ pool: pool.id }, ready);
    }
  }

  /** Each endpoint of each pool with its scraper's reading, as of the last schedule. */
  private *latestReadings(): Generator<{ labels: { pool: string; endpoint: string }; reading: Readonly<EndpointReading> }> {
    if (!this.latest) return;
    for (const pool of this.latest.config.pools) {
      for (const e of pool.endpoints) {
        const endpoint = endpointAddress(e);
        const reading = this.latest.readings.get(endpoint);
        if (reading) yield { labels: { pool: pool.id, endpoint }, reading };
      }
    }
  }

  private collectXds(gauge: Gauge<"type">, counts: (s: XdsStream) => boolean): void {
    const streams = this.xdsStreams();
    for (const type of XDS_KINDS) gauge.set({ type }, new Set(streams.filter((s) => s.type === type && counts(s)).map((s) => s.node)).size);
  }
}
