// Keeps Envoy in step: renders the routing snapshot for the filter (ECDS) and the pools'
// endpoints (EDS), and pushes them when they change. Score changes are rate-limited (at most one
// push per `minIntervalMs`, later changes coalescing into a trailing push) so Envoy is never
// flooded; configuration changes push at once.
import type { RoutingConfig } from "./config/routing-config.ts";
import type { ServerMetrics } from "./metrics.ts";
import { NEUTRAL_LOAD, renderSnapshot, type LoadView } from "./snapshot.ts";
import { poolClusterName } from "./envoy/bootstrap.ts";
import { encodeWasmFilter, extensionConfigResource, FILTER_CONFIG_NAME, loadAssignmentResource, WASM_TYPE_URL } from "./xds/wasm-config.ts";
import { TYPE_EXTENSION_CONFIG, TYPE_LOAD_ASSIGNMENT, type XdsServer } from "./xds/server.ts";

export class Publisher {
  private snapshotVersion = 0;
  private lastBody = "";
  private lastEndpoints = "";
  private current = "";
  private config?: RoutingConfig;
  private load: LoadView = NEUTRAL_LOAD;
  private lastPushAt = -Infinity;
  private trailing?: NodeJS.Timeout;

  /** Set when Envoys fetch the module over HTTP instead of reading a local file. */
  wasmRemote?: { uri: string; cluster: string; sha256: string };

  constructor(private readonly xds: XdsServer, private readonly wasmPath: string, private readonly metrics?: ServerMetrics) {}

  /** The snapshot text most recently published. */
  get snapshot(): string { return this.current; }
  get version(): number { return this.snapshotVersion; }

  /** A new configuration: endpoints and snapshot are pushed at once. */
  setConfig(config: RoutingConfig, load: LoadView = this.load): void {
    this.config = config;
    this.load = load;
    this.publishEndpoints(config);
    this.pushSnapshot();
  }

  /** New load scores: pushed if the snapshot changes, no more often than the configured rate. */
  setLoad(load: LoadView): void {
    this.load = load;
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
    const body = renderSnapshot(this.config, 0, this.load);
    if (body === this.lastBody) return;
    this.lastBody = body;
    this.snapshotVersion++;
    this.lastPushAt = performance.now();
    this.current = renderSnapshot(this.config, this.snapshotVersion, this.load);
    const wasm = encodeWasmFilter({ wasmPath: this.wasmPath, remote: this.wasmRemote, snapshot: this.current });
    // Served under its own name, and under any other name Envoy asks for: Envoy Gateway names the
    // Wasm filters an EnvoyExtensionPolicy attaches after the policy.
    this.xds.setResources(TYPE_EXTENSION_CONFIG, [extensionConfigResource(FILTER_CONFIG_NAME, WASM_TYPE_URL, wasm)],
      (name) => extensionConfigResource(name, WASM_TYPE_URL, wasm));
    this.metrics?.snapshotVersion.set(this.snapshotVersion);
    this.metrics?.snapshotPushes.inc();
  }

  private publishEndpoints(config: RoutingConfig): void {
    const key = JSON.stringify(config.pools.map((p) => [p.name, p.endpoints]));
    if (key === this.lastEndpoints) return;
    this.lastEndpoints = key;
    this.xds.setResources(TYPE_LOAD_ASSIGNMENT, config.pools.map((p) => loadAssignmentResource(poolClusterName(p.name), p.endpoints)));
    for (const p of config.pools) this.metrics?.poolEndpoints.set({ pool: p.name }, p.endpoints.length);
  }
}
