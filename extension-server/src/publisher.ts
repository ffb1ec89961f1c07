// Keeps Envoy in step: renders the routing snapshot for the filter (ECDS), its load for the load
// channel (xds/load-channel.ts), and the pools' endpoints (EDS), and pushes them when they change. Score
// changes are rate-limited (at most one push per `minIntervalMs`, later changes coalescing into a
// trailing push) so Envoy is never flooded; configuration changes push at once.
import type { RoutingConfig } from "./config/routing-config.ts";
import { randomBytes } from "node:crypto";
import { FILTER_NAME } from "./contract.ts";
import { pickerClusterName, pickerLoadAssignment } from "./envoy/endpoint-picker.ts";
import type { PoolEndpoint } from "./config/routing-config.ts";
import {
  loadAssignment, loadChannelService, poolClusterName, poolsEdsName, routeEdsName, typedExtensionConfig, WASM_TYPE_URL, wasmFilter, type WasmFilterOptions,
  type XdsTransport,
} from "./envoy/resources.ts";
import { policyWasmFilter } from "./gateway/policy-filter.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { Schedule } from "./scheduling/scheduler.ts";
import { loadChannelRecord, renderLoad, renderSnapshot } from "./snapshot.ts";
import { encodeAny, encodeJson } from "./xds/encode.ts";
import { protoRoot, typeUrl } from "./xds/protos.ts";
import type { LoadChannel } from "./xds/load-channel.ts";
import { TYPE_EXTENSION_CONFIG, TYPE_LOAD_ASSIGNMENT, type EncodedResource, type XdsServer } from "./xds/server.ts";

export interface PublisherOptions {
  /** The compiled filter module: a path on the Envoy host, and/or where Envoys download it. */
  wasmPath: string;
  wasmRemote?: WasmFilterOptions["remote"];
  /** Where the load goes (each new one, on its own), and how the filters reach it: the snapshot
   * names that GrpcService in its `load-channel` record. */
  load: { channel: LoadChannel; via: XdsTransport };
  metrics?: ServerMetrics | undefined;
  log?: ((message: string) => void) | undefined;
}

function resource(name: string, type: string, json: Record<string, unknown>): EncodedResource {
  return { name, any: { type_url: typeUrl(type), value: encodeJson(type, json) } };
}

const TYPED_EXTENSION_CONFIG = "envoy.config.core.v3.TypedExtensionConfig";

/** A renderer's onDropped that adds "record: why" to `into`. */
const collectInto = (into: Set<string>) => (record: string, why: string): void => { into.add(`${record}: ${why}`); };

/** EnvoyExtensionPolicy filters remembered at most; the least recently seen goes first. Envoy
 * Gateway shows every current one to the hooks on each translation, so a deleted policy's filter
 * ages out. */
const MAX_POLICY_FILTERS = 256;

/** EDS names of pool unions the Cluster hook handed out, remembered at most (the EDS bound of
 * xds/server.ts); the least recently seen goes first. */
const MAX_POOL_UNIONS = 1024;

export class Publisher {
  private snapshotVersion = 0;
  /** The routing snapshot without the load, as the Wasm filter's configuration carries it. */
  private routing = "";
  private lastBody = "";
  private lastLoad = "";
  private loadVersion = 0;
  /** Load versions are `<epoch>-<n>`: a restarted server never repeats one a filter has applied. */
  private readonly loadEpoch = randomBytes(4).toString("hex");
  private lastEndpoints = "";
  /** The combined view (`snapshot`), rendered when first asked for after a push, not on every push. */
  private current?: string;
  /** The schedule of the last push: what the combined view shows. */
  private pushedSchedule?: Schedule;
  private config?: RoutingConfig;
  private schedule?: Schedule;
  private lastPushAt = -Infinity;
  private trailing?: NodeJS.Timeout;
  /** Records the renderer dropped last time, so each is logged when it starts being dropped. */
  private dropped = new Set<string>();
  /** Records the routing part's render dropped (kept between configuration changes). */
  private routingDropped = new Set<string>();
  /** EnvoyExtensionPolicy Wasm filters fed over ECDS, by filter name: their Wasm as Envoy Gateway built it. */
  private readonly policyFilters = new Map<string, Uint8Array>();
  /** EDS names of pool unions the Cluster hook gave Envoy Gateway's clusters (setPoolUnion). */
  private readonly poolUnions = new Set<string>();

  /** The snapshot's `load-channel` record. */
  private readonly channelRecord: string;

  constructor(private readonly xds: XdsServer, private readonly opts: PublisherOptions) {
    this.channelRecord = loadChannelRecord(encodeJson("envoy.config.core.v3.GrpcService", loadChannelService(opts.load.via)));
  }

  /** The snapshot most recently published, with its load in place (what the filters route on). */
  get snapshot(): string {
    if (this.current === undefined) this.current = this.config && this.routing ? renderSnapshot(this.config, this.snapshotVersion, this.pushedSchedule) + this.channelRecord : "";
    return this.current;
  }

  /** A new configuration (and the schedule for it): endpoints and snapshot are pushed at once. */
  setConfig(config: RoutingConfig, schedule?: Schedule): void {
    this.config = config;
    this.schedule = schedule;
    this.publishEndpoints(config);
    this.pushSnapshot(this.renderRouting(config));
  }

  /** New scores: pushed if the snapshot changes, no more often than the configured rate. */
  setSchedule(schedule: Schedule): void {
    this.schedule = schedule;
    if (!this.config || this.trailing) return;
    const wait = this.lastPushAt + this.config.scheduler.push.minIntervalMs - performance.now();
    if (wait <= 0) { this.pushSnapshot(); return; }
    this.trailing = setTimeout(() => { this.trailing = undefined; this.pushSnapshot(); }, wait);
  }

  /**
   * An EnvoyExtensionPolicy Wasm filter the Listener hook feeds over ECDS: served under its name
   * with the policy's own module and the snapshot (gateway/policy-filter.ts). Only names learned
   * here (and the filter's own) are served over ECDS.
   */
  setPolicyFilter(name: string, wasm: Uint8Array): void {
    const known = this.policyFilters.get(name);
    this.policyFilters.delete(name); // re-inserted last: the most recently seen
    this.policyFilters.set(name, wasm);
    if (known && Buffer.compare(known, wasm) === 0) return;
    if (this.policyFilters.size > MAX_POLICY_FILTERS) {
      const oldest = this.policyFilters.keys().next().value!;
      this.policyFilters.delete(oldest);
      this.opts.log?.(`more than ${MAX_POLICY_FILTERS} EnvoyExtensionPolicy filters; no longer serving the least recently seen, ${oldest}`);
    }
    this.publishFilters();
  }

  /**
   * The EDS name of a pool union the Cluster hook gave a cluster (an HTTPRoute rule splitting
   * between pools). Names of the rules infergate serves are published anyway; this also serves a
   * rule it leaves out (say, in a namespace it does not watch), whose requests the filter still
   * steers by the model's pool.
   */
  setPoolUnion(edsName: string): void {
    const known = this.poolUnions.delete(edsName); // re-inserted last: the most recently seen
    this.poolUnions.add(edsName);
    if (known) return;
    if (this.poolUnions.size > MAX_POOL_UNIONS) this.poolUnions.delete(this.poolUnions.values().next().value!);
    if (this.config) this.publishEndpoints(this.config);
  }

  stop(): void {
    clearTimeout(this.trailing);
    this.trailing = undefined;
  }

  /**
   * The routing part of the snapshot, rendered here and only here: no scrape can change it, only a
   * configuration. Returns whether it changed (then it has a new version).
   */
  private renderRouting(config: RoutingConfig): boolean {
    const routingDropped = new Set<string>();
    const body = renderSnapshot(config, 0, undefined, collectInto(routingDropped));
    this.routingDropped = routingDropped;
    if (body === this.lastBody) return false;
    this.lastBody = body;
    this.snapshotVersion++;
    this.routing = renderSnapshot(config, this.snapshotVersion) + this.channelRecord;
    return true;
  }

  /** Publishes the snapshot if its routing part changed (`routingChanged`) or the load did. */
  private pushSnapshot(routingChanged = false): void {
    if (!this.config) return;
    const dropped = new Set(this.routingDropped);
    const load = renderLoad(this.config, this.schedule, collectInto(dropped));
    for (const d of dropped) {
      if (this.dropped.has(d)) continue;
      this.opts.log?.(`left out of the snapshot: ${d}`);
      this.opts.metrics?.snapshotRecordsDropped.inc();
    }
    this.dropped = dropped;
    const loadChanged = load !== this.lastLoad;
    if (!routingChanged && !loadChanged) return;
    this.lastPushAt = performance.now();
    this.pushedSchedule = this.schedule;
    this.current = undefined;
    if (loadChanged) {
      this.lastLoad = load;
      this.loadVersion++;
      this.opts.load.channel.publish({ version: `${this.loadEpoch}-${this.loadVersion}`, text: load });
    }
    // Before the snapshot: a new root context starts from the last load its VM received.
    if (routingChanged) this.publishFilters();
    this.opts.metrics?.snapshotVersion.set(this.snapshotVersion);
    this.opts.metrics?.snapshotPushes.inc();
  }

  /** The filter's configuration with the routing snapshot (ECDS): under the filter's own name, and
   * under the name of each EnvoyExtensionPolicy filter, with that policy's module. Only a routing
   * change publishes it: the load travels on the load channel. */
  private publishFilters(): void {
    if (!this.routing) return; // no snapshot yet: pushSnapshot publishes
    const filter = wasmFilter({ wasmPath: this.opts.wasmPath, remote: this.opts.wasmRemote, snapshot: this.routing });
    const ours = encodeAny(filter).value;
    const extensionConfig = protoRoot().lookupType(TYPED_EXTENSION_CONFIG);
    const policyFilter = (name: string, wasm: Uint8Array): EncodedResource => ({
      name,
      any: {
        type_url: typeUrl(TYPED_EXTENSION_CONFIG),
        value: extensionConfig.encode(extensionConfig.fromObject({ name, typed_config: { type_url: WASM_TYPE_URL, value: policyWasmFilter(wasm, ours) } })).finish(),
      },
    });
    this.xds.setResources(TYPE_EXTENSION_CONFIG, [
      resource(FILTER_NAME, TYPED_EXTENSION_CONFIG, typedExtensionConfig(FILTER_NAME, filter)),
      ...[...this.policyFilters].map(([name, wasm]) => policyFilter(name, wasm)),
    ]);
  }

  /**
   * The endpoints (EDS) under every name Envoy may ask for; the xDS server answers no other name.
   * Each pool under its own name; each HTTPRoute rule's cluster and each mirror's cluster (the
   * standalone bootstrap's and the Translation hook's names); the union of a rule's pools (the
   * Cluster hook's name for a split); and the unions the Cluster hook handed out (setPoolUnion).
   */
  private publishEndpoints(config: RoutingConfig): void {
    const names = new Set([
      ...config.pools.map((p) => poolClusterName(p.id)),
      ...config.routes.flatMap((r) => [routeEdsName(r.cluster), poolsEdsName([...new Set(r.backends.map((b) => b.pool))]), ...r.mirrors.map((m) => routeEdsName(m.cluster))]),
      ...this.poolUnions,
    ]);
    const resources = [...names].flatMap((name) => {
      const endpoints = edsEndpoints(name, config);
      return endpoints ? [{ name, endpoints }] : [];
    });
    const pickers = config.pools.flatMap((p) => (p.picker ? [{ pool: p.id, picker: p.picker }] : []));
    const key = JSON.stringify([resources, pickers.map((p) => [p.pool, p.picker.address])]);
    if (key === this.lastEndpoints) return;
    this.lastEndpoints = key;
    const assignment = "envoy.config.endpoint.v3.ClusterLoadAssignment";
    this.xds.setResources(TYPE_LOAD_ASSIGNMENT, [
      ...resources.map(({ name, endpoints }) => resource(name, assignment, loadAssignment(name, endpoints))),
      // A pool's endpoint picker: the Service's address, or none when the reference does not resolve.
      ...pickers.map(({ pool, picker }) => resource(pickerClusterName(pool), assignment, pickerLoadAssignment(pool, picker))),
    ]);
  }
}

/**
 * The endpoints of an EDS resource name (envoy/resources.ts names them): `infergate-pool/<a>` is
 * that pool's, `infergate-pools/<a>,<b>` the union of those pools; `infergate-route/<cluster>` is the union of an HTTPRoute rule's
 * pools, or, for `<rule cluster>-mirror-<n>`, the mirror's pool. Undefined for an unknown name.
 */
export function edsEndpoints(name: string, config: RoutingConfig): PoolEndpoint[] | undefined {
  const union = (ids: readonly string[]): PoolEndpoint[] => {
    const seen = new Set<string>();
    return config.pools.filter((p) => ids.includes(p.id)).flatMap((p) => p.endpoints)
      .filter((e) => { const k = `${e.ip}:${e.port}`; if (seen.has(k)) return false; seen.add(k); return true; });
  };
  if (name.startsWith("infergate-pool/")) return union([name.slice("infergate-pool/".length)]);
  if (name.startsWith("infergate-pools/")) return union(name.slice("infergate-pools/".length).split(","));
  if (!name.startsWith("infergate-route/")) return undefined;
  const cluster = name.slice("infergate-route/".length);
  for (const r of config.routes) {
    if (r.cluster === cluster) return union(r.backends.map((b) => b.pool));
    const mirror = r.mirrors.find((m) => m.cluster === cluster);
    if (mirror) return union([mirror.pool]);
  }
  return undefined;
}
