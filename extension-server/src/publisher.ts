// Keeps Envoy in step: renders the routing snapshot for the filter (ECDS) and the pools'
// endpoints (EDS), and pushes them when they change. Score changes are rate-limited (at most one
// push per `minIntervalMs`, later changes coalescing into a trailing push) so Envoy is never
// flooded; configuration changes push at once.
import type { RoutingConfig } from "./config/routing-config.ts";
import { FILTER_NAME } from "./contract.ts";
import { pickerClusterName, pickerLoadAssignment } from "./envoy/endpoint-picker.ts";
import { loadAssignment, poolClusterName, typedExtensionConfig, wasmFilter, type WasmFilterOptions } from "./envoy/resources.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { Schedule } from "./scheduling/scheduler.ts";
import { renderSnapshot } from "./snapshot.ts";
import { encodeJson } from "./xds/encode.ts";
import { typeUrl } from "./xds/protos.ts";
import { TYPE_EXTENSION_CONFIG, TYPE_LOAD_ASSIGNMENT, type EncodedResource, type XdsServer } from "./xds/server.ts";

export interface PublisherOptions {
  /** The compiled filter module: a path on the Envoy host, and/or where Envoys download it. */
  wasmPath: string;
  wasmRemote?: WasmFilterOptions["remote"];
  metrics?: ServerMetrics | undefined;
  log?: ((message: string) => void) | undefined;
}

function resource(name: string, type: string, json: Record<string, unknown>): EncodedResource {
  return { name, any: { type_url: typeUrl(type), value: encodeJson(type, json) } };
}

export class Publisher {
  private snapshotVersion = 0;
  private lastBody = "";
  private lastEndpoints = "";
  private current = "";
  private config?: RoutingConfig;
  private schedule?: Schedule;
  private lastPushAt = -Infinity;
  private trailing?: NodeJS.Timeout;
  /** Records the renderer dropped last time, so each is logged when it starts being dropped. */
  private dropped = new Set<string>();

  constructor(private readonly xds: XdsServer, private readonly opts: PublisherOptions) {}

  /** The snapshot text most recently published. */
  get snapshot(): string { return this.current; }

  /** A new configuration (and the schedule for it): endpoints and snapshot are pushed at once. */
  setConfig(config: RoutingConfig, schedule?: Schedule): void {
    this.config = config;
    this.schedule = schedule;
    this.publishEndpoints(config);
    this.pushSnapshot();
  }

  /** New scores: pushed if the snapshot changes, no more often than the configured rate. */
  setSchedule(schedule: Schedule): void {
    this.schedule = schedule;
    if (!this.config || this.trailing) return;
    const wait = this.lastPushAt + this.config.scheduler.push.minIntervalMs - performance.now();
    if (wait <= 0) { this.pushSnapshot(); return; }
    this.trailing = setTimeout(() => { this.trailing = undefined; this.pushSnapshot(); }, wait);
  }

  stop(): void {
    clearTimeout(this.trailing);
    this.trailing = undefined;
  }

  private pushSnapshot(): void {
    if (!this.config) return;
    // Only a change of content makes a new version.
    const dropped = new Set<string>();
    const body = renderSnapshot(this.config, 0, this.schedule, (record, why) => dropped.add(`${record}: ${why}`));
    for (const d of dropped) {
      if (this.dropped.has(d)) continue;
      this.opts.log?.(`left out of the snapshot: ${d}`);
      this.opts.metrics?.snapshotRecordsDropped.inc();
    }
    this.dropped = dropped;
    if (body === this.lastBody) return;
    this.lastBody = body;
    this.snapshotVersion++;
    this.lastPushAt = performance.now();
    this.current = renderSnapshot(this.config, this.snapshotVersion, this.schedule);
    const filter = wasmFilter({ wasmPath: this.opts.wasmPath, remote: this.opts.wasmRemote, snapshot: this.current });
    const named = (name: string): EncodedResource => resource(name, "envoy.config.core.v3.TypedExtensionConfig", typedExtensionConfig(name, filter));
    // Served under its own name, and under any other name Envoy asks for: Envoy Gateway names the
    // Wasm filters an EnvoyExtensionPolicy attaches after the policy.
    this.xds.setResources(TYPE_EXTENSION_CONFIG, [named(FILTER_NAME)], named);
    this.opts.metrics?.snapshotVersion.set(this.snapshotVersion);
    this.opts.metrics?.snapshotPushes.inc();
  }

  private publishEndpoints(config: RoutingConfig): void {
    const key = JSON.stringify(config.pools.map((p) => [p.id, p.endpoints, p.picker?.address]));
    if (key === this.lastEndpoints) return;
    this.lastEndpoints = key;
    const assignment = "envoy.config.endpoint.v3.ClusterLoadAssignment";
    this.xds.setResources(TYPE_LOAD_ASSIGNMENT, [
      ...config.pools.map((p) => resource(poolClusterName(p.id), assignment, loadAssignment(poolClusterName(p.id), p.endpoints))),
      // A pool's endpoint picker: the Service's address, or none when the reference does not resolve.
      ...config.pools.flatMap((p) => (p.picker ? [resource(pickerClusterName(p.id), assignment, pickerLoadAssignment(p.id, p.picker))] : [])),
    ]);
  }
}
