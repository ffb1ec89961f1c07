// The extension server's composition root: it picks the configuration source (a YAML file or the
// Kubernetes API), and wires it to the load loop (scrape → score → publish), the xDS server the
// publisher pushes through, the HTTP listener (/metrics, /snapshot, the module), Envoy Gateway's
// hooks, and, in standalone mode, an Envoy it runs with a generated bootstrap. Beyond start-up
// order, it only records and logs what the source reports (the configuration, or a rejection).
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { KubeConfig } from "@kubernetes/client-node";
import { FileSource } from "./config/file-source.ts";
import { KubeSource } from "./config/kube-source.ts";
import type { RoutingConfig } from "./config/routing-config.ts";
import type { ConfigSource } from "./config/source.ts";
import { buildBootstrap } from "./envoy/bootstrap.ts";
import { EnvoyProcess } from "./envoy/process.ts";
import { GatewayHooks } from "./gateway/hooks.ts";
import { HttpServer, MODULE_PATH } from "./http-server.ts";
import { LoadLoop } from "./load-loop.ts";
import { ServerMetrics } from "./metrics.ts";
import { Publisher } from "./publisher.ts";
import { TYPE_EXTENSION_CONFIG, XdsServer } from "./xds/server.ts";

const DEFAULT_WASM_PATH = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "build", "infergate.wasm");
const MODULE_CLUSTER = "infergate_module";

export interface InfergateServerOptions {
  /** Where the configuration comes from: a YAML file (standalone), or the cluster's resources. */
  source: { file: string } | { kubernetes: KubeConfig };
  wasmPath?: string | undefined;
  listenAddress?: string | undefined;
  xdsPort?: number | undefined; // 0 = ephemeral
  metricsPort?: number | undefined; // 0 = ephemeral; undefined = no HTTP listener
  /** Run Envoy with a generated bootstrap (standalone). */
  envoy?: { adminPort: number; plainPort: number; inferencePort?: number | undefined; leastRequestPort?: number | undefined; concurrency?: number | undefined; logLevel?: string | undefined } | undefined;
  /** Serve Envoy Gateway's extension hooks on this port (0 = ephemeral); Envoy Gateway runs Envoy. */
  hooksPort?: number | undefined;
  /** How the Envoys Envoy Gateway runs reach this server's xDS (default 127.0.0.1:<xds port>). */
  xdsAdvertise?: { host: string; port?: number | undefined } | undefined;
  /** Envoys elsewhere fetch the filter module from this server's HTTP listener, at this host. */
  moduleAdvertise?: { host: string; port?: number | undefined } | undefined;
  log?: ((message: string) => void) | undefined;
}

/** Pools whose endpoint picker reference does not resolve, for the load log line. */
function unresolvedPickers(config: RoutingConfig): string {
  const lines = config.pools.flatMap((p) => (p.picker?.unresolved
    ? [`InferencePool ${p.id}: endpointPickerRef: ${p.picker.unresolved}; its requests ${p.picker.failureMode === "FailOpen" ? "are routed by infergate (FailOpen)" : "get 503 (FailClose)"}`]
    : []));
  return lines.length > 0 ? `; endpoint pickers not resolved:\n  ${lines.join("\n  ")}` : "";
}

export class InfergateServer {
  private readonly metrics = new ServerMetrics();
  private readonly log: (message: string) => void;
  private readonly wasmPath: string;
  private readonly source: ConfigSource;
  private readonly xds: XdsServer;
  private publisher?: Publisher;
  private loop?: LoadLoop;
  private http?: HttpServer;
  private hooks?: GatewayHooks;
  private envoyProcess?: EnvoyProcess;
  private config?: RoutingConfig;
  private rejection: readonly string[] = [];
  private ports = { xds: 0, http: 0, hooks: 0 };

  constructor(private readonly opts: InfergateServerOptions) {
    this.log = opts.log ?? ((m: string) => console.error(m));
    this.wasmPath = resolve(opts.wasmPath ?? DEFAULT_WASM_PATH);
    this.source = "file" in opts.source ? new FileSource(opts.source.file) : new KubeSource(opts.source.kubernetes);
    this.xds = new XdsServer({
      onAck: (type, version, node, error) => {
        const kind = type === TYPE_EXTENSION_CONFIG ? "ecds" : "eds";
        this.metrics.xdsResponses.inc({ type: kind, result: error ? "nack" : "ack" });
        if (error) this.log(`envoy ${node} rejected ${kind} version ${version}: ${error}`);
      },
    });
  }

  // Read-only view, for the CLI and tests.
  get snapshot(): string { return this.publisher?.snapshot ?? ""; }
  /** Why the last configuration change was rejected (empty once a good one loads). */
  get lastRejection(): readonly string[] { return this.rejection; }
  /** What the configuration being served left out, and why. */
  get problems(): readonly string[] { return this.config?.problems.map((p) => p.text) ?? []; }
  get envoy(): EnvoyProcess | undefined { return this.envoyProcess; }
  get xdsPort(): number { return this.ports.xds; }
  get metricsPort(): number { return this.ports.http; }
  get hooksPort(): number { return this.ports.hooks; }
  /** The Prometheus exposition of this server's metrics. */
  metricsText(): Promise<string> { return this.metrics.registry.metrics(); }

  async start(): Promise<void> {
    const address = this.opts.listenAddress ?? "127.0.0.1";
    const kubernetes = "kubernetes" in this.opts.source;
    if (this.opts.metricsPort !== undefined) {
      this.http = new HttpServer({ metrics: this.metrics, snapshot: () => this.snapshot, wasmPath: this.wasmPath });
      this.ports.http = await this.http.listen(address, this.opts.metricsPort);
    }
    const module = this.opts.moduleAdvertise;
    const publisher = this.publisher = new Publisher(this.xds, {
      wasmPath: this.wasmPath,
      metrics: this.metrics,
      log: this.log,
      // Envoys elsewhere download the module from the HTTP listener, checked by its sha256.
      wasmRemote: module && {
        uri: `http://${module.host}:${module.port ?? this.ports.http}${MODULE_PATH}`, cluster: MODULE_CLUSTER,
        sha256: createHash("sha256").update(readFileSync(this.wasmPath)).digest("hex"),
      },
    });
    const loop = this.loop = new LoadLoop(publisher, this.metrics);
    this.ports.xds = await this.xds.listen(kubernetes ? address : "127.0.0.1", this.opts.xdsPort ?? 0);
    await this.source.start({
      onConfig: (config) => {
        this.config = config;
        this.rejection = [];
        this.metrics.configReloads.inc({ result: "ok" });
        this.metrics.recordConfig(config);
        loop.setConfig(config);
        const skipped = config.problems.length > 0 ? `; left out:\n  ${config.problems.map((p) => p.text).join("\n  ")}` : "";
        this.log(`loaded ${this.source.description}: ${config.pools.length} pools, ${config.models.length} models, snapshot ${publisher.snapshot.split("\n")[1] ?? ""}${skipped}${unresolvedPickers(config)}`);
      },
      onRejected: (problems) => {
        this.rejection = problems;
        this.metrics.configReloads.inc({ result: "rejected" });
        this.log(`rejected ${this.source.description}; keeping the previous configuration:\n  ${problems.join("\n  ")}`);
      },
      log: this.log,
    });
    if (this.opts.hooksPort !== undefined) {
      const advertise = this.opts.xdsAdvertise;
      this.hooks = new GatewayHooks({
        xdsHost: advertise?.host ?? "127.0.0.1", xdsPort: advertise?.port ?? this.ports.xds, config: () => this.currentConfig(), log: this.log,
        moduleCluster: module && { name: MODULE_CLUSTER, host: module.host, port: module.port ?? this.ports.http },
      });
      this.ports.hooks = await this.hooks.listen(address, this.opts.hooksPort);
    }
    const e = this.opts.envoy;
    if (e) {
      const bootstrap = buildBootstrap({
        listenAddress: address, adminPort: e.adminPort, plainPort: e.plainPort, inferencePort: e.inferencePort, leastRequestPort: e.leastRequestPort,
        xdsAddress: "127.0.0.1", xdsPort: this.ports.xds, wasmPath: this.wasmPath, snapshot: publisher.snapshot, config: this.currentConfig(),
      });
      this.envoyProcess = await EnvoyProcess.start({ bootstrap, concurrency: e.concurrency, logLevel: e.logLevel });
    }
  }

  /** Stops the control plane only; a running Envoy keeps its last snapshot. */
  async stopControlPlane(): Promise<void> {
    this.hooks?.close();
    await this.source.stop();
    this.loop?.stop();
    this.publisher?.stop();
    await this.xds.close();
    await this.http?.close();
  }

  async stop(): Promise<void> {
    await this.envoyProcess?.stop();
    await this.stopControlPlane();
  }

  private currentConfig(): RoutingConfig {
    if (!this.config) throw new Error("no configuration loaded yet");
    return this.config;
  }
}
