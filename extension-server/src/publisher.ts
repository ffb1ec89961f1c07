// Keeps Envoy in step with the routing configuration: renders the snapshot for the filter (ECDS)
// and the pools' endpoints (EDS), and pushes both whenever they change.
import type { RoutingConfig } from "./config/routing-config.ts";
import type { ServerMetrics } from "./metrics.ts";
import { renderSnapshot } from "./snapshot.ts";
import { poolClusterName } from "./envoy/bootstrap.ts";
import { encodeWasmFilter, extensionConfigResource, FILTER_CONFIG_NAME, loadAssignmentResource, WASM_TYPE_URL } from "./xds/wasm-config.ts";
import { TYPE_EXTENSION_CONFIG, TYPE_LOAD_ASSIGNMENT, type XdsServer } from "./xds/server.ts";

export class Publisher {
  private snapshotVersion = 0;
  private lastSnapshotBody = "";
  private lastEndpoints = "";
  private current = "";

  constructor(private readonly xds: XdsServer, private readonly wasmPath: string, private readonly metrics?: ServerMetrics) {}

  /** The snapshot text most recently published. */
  get snapshot(): string { return this.current; }
  get version(): number { return this.snapshotVersion; }

  publish(config: RoutingConfig): void {
    this.publishEndpoints(config);
    this.publishSnapshot(config);
  }

  private publishSnapshot(config: RoutingConfig): void {
    // Only a change of content makes a new version: an unchanged file re-save pushes nothing.
    const body = renderSnapshot(config, 0);
    if (body === this.lastSnapshotBody) return;
    this.lastSnapshotBody = body;
    this.snapshotVersion++;
    this.current = renderSnapshot(config, this.snapshotVersion);
    const wasm = encodeWasmFilter({ wasmPath: this.wasmPath, snapshot: this.current });
    this.xds.setResources(TYPE_EXTENSION_CONFIG, [extensionConfigResource(FILTER_CONFIG_NAME, WASM_TYPE_URL, wasm)]);
    this.metrics?.snapshotVersion.set(this.snapshotVersion);
  }

  private publishEndpoints(config: RoutingConfig): void {
    const key = JSON.stringify(config.pools.map((p) => [p.name, p.endpoints]));
    if (key === this.lastEndpoints) return;
    this.lastEndpoints = key;
    this.xds.setResources(TYPE_LOAD_ASSIGNMENT, config.pools.map((p) => loadAssignmentResource(poolClusterName(p.name), p.endpoints)));
    for (const p of config.pools) this.metrics?.poolEndpoints.set({ pool: p.name }, p.endpoints.length);
  }
}
