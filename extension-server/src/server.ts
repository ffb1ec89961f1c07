// The extension server's composition root: it picks the configuration source (a YAML file or the
// Kubernetes API), and wires it to the load loop (scrape → score → publish), the xDS server the
// publisher pushes through, the HTTP listeners (/metrics; /snapshot on loopback; the module on a
// port of its own), Envoy Gateway's hooks, and, in standalone mode, an Envoy it runs with a
// generated bootstrap. Beyond start-up order, it only records and logs what the source and the
// xDS server report (the configuration, a rejection, names it does not serve).
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { KubeConfig } from "@kubernetes/client-node";
import { FileSource } from "./config/file-source.ts";
import { KubeSource } from "./config/kube-source.ts";
import type { RoutingConfig } from "./config/routing-config.ts";
import type { ConfigSource } from "./config/source.ts";
import { buildBootstrap, XDS_CLUSTER } from "./envoy/bootstrap.ts";
import type { XdsClientTls } from "./envoy/resources.ts";
import { EnvoyProcess } from "./envoy/process.ts";
import { GatewayHooks } from "./gateway/hooks.ts";
import { HttpServer, MODULE_PATH, type HttpServerOptions } from "./http-server.ts";
import { LoadLoop } from "./load-loop.ts";
import { ServerMetrics, type XdsKind } from "./metrics.ts";
import { Publisher } from "./publisher.ts";
import type { SchedulerConfig } from "./scheduling/config.ts";
import { mtlsServerCredentials, readPem, type TlsFiles } from "./tls.ts";
import { LoadChannel } from "./xds/load-channel.ts";
import { TYPE_EXTENSION_CONFIG, XdsServer, type IgnoredReason } from "./xds/server.ts";

export const DEFAULT_WASM_PATH = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "build", "infergate.wasm");
const MODULE_CLUSTER = "infergate_module";

export interface InfergateServerOptions {
  /** Where the configuration comes from: a YAML file (standalone), or the cluster's resources (in
   * every namespace, or only in `namespaces`), with the scheduler settings `scheduler` (an
   * InfergateConfig's spec, --scheduler-config; default: DEFAULT_SCHEDULER_CONFIG). */
  source: { file: string } | { kubernetes: KubeConfig; namespaces?: readonly string[] | undefined; scheduler?: SchedulerConfig | undefined };
  wasmPath?: string | undefined;
  listenAddress?: string | undefined;
  xdsPort?: number | undefined; // 0 = ephemeral
  /** /metrics and /healthz, on the listen address (0 = ephemeral; undefined = none). */
  metricsPort?: number | undefined;
  /** /snapshot, on 127.0.0.1 only (0 = ephemeral; undefined = none). */
  debugPort?: number | undefined;
  /** The filter module, for Envoys on other hosts (with moduleAdvertise), on the listen address
   * (0 = ephemeral, the default). */
  modulePort?: number | undefined;
  /** Run Envoy with a generated bootstrap (standalone). */
  envoy?: { adminPort: number; plainPort: number; inferencePort?: number | undefined; leastRequestPort?: number | undefined; concurrency?: number | undefined; logLevel?: string | undefined } | undefined;
  /** Serve Envoy Gateway's extension hooks on this port (0 = ephemeral); Envoy Gateway runs Envoy. */
  hooksPort?: number | undefined;
  /** How the Envoys Envoy Gateway runs reach this server's xDS (default 127.0.0.1:<xds port>). */
  xdsAdvertise?: { host: string; port?: number | undefined } | undefined;
  /** Envoys elsewhere fetch the filter module from this server's module listener, at this host. */
  moduleAdvertise?: { host: string; port?: number | undefined } | undefined;
  /** Mutual TLS for xDS and the hooks: clients must present a certificate signed by `files.ca`. */
  tls?: {
    files: TlsFiles;
    /** The CA (PEM file) Envoys verify this server's certificate with (default: files.ca). */
    serverCa?: string | undefined;
    /** Directory on the Envoys' hosts holding their client certificate: tls.crt and tls.key
     * (Envoy Gateway mounts its `envoy` Secret at /certs in every Envoy pod). */
    envoyCertDir: string;
    /** Keep the hooks in plaintext (Envoy Gateway in standalone mode cannot use TLS to an extension). */
    plaintextHooks?: boolean | undefined;
  } | undefined;
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
  /** The load channel, served beside xDS on its port. */
  private readonly loadChannel = new LoadChannel();
  private publisher?: Publisher;
  private loop?: LoadLoop;
  private readonly http: HttpServer[] = [];
  private hooks?: GatewayHooks;
  private envoyProcess?: EnvoyProcess;
  private config?: RoutingConfig;
  private rejection: readonly string[] = [];
  private ports = { xds: 0, http: 0, debug: 0, module: 0, hooks: 0 };
  private bootstrapShape?: string;
  /** Streams that had names ignored, by reason: each is logged once (the metric counts them all). */
  private readonly ignoredLogged = new Set<string>();

  constructor(private readonly opts: InfergateServerOptions) {
    this.log = opts.log ?? ((m: string) => console.error(m));
    this.wasmPath = resolve(opts.wasmPath ?? DEFAULT_WASM_PATH);
    this.source = "file" in opts.source ? new FileSource(opts.source.file) : new KubeSource(opts.source.kubernetes, { namespaces: opts.source.namespaces, scheduler: opts.source.scheduler });
    this.xds = new XdsServer({
      onAck: (type, version, node, error, seconds) => {
        this.metrics.xdsResponses.inc({ type: xdsKind(type), result: error ? "nack" : "ack" });
        this.metrics.xdsAckDuration.observe({ type: xdsKind(type) }, seconds);
        if (error) this.log(`envoy ${node} rejected ${xdsKind(type)} version ${version}: ${error}`);
      },
      onIgnoredNames: (type, node, reason, names) => this.onIgnoredNames(type, node, reason, names),
    }, { services: [this.loadChannel.service()] });
    this.metrics.countLoadStreams = () => this.loadChannel.streams;
    this.metrics.watchXds(() => this.xds.streamStates().map((s) => ({ type: xdsKind(s.typeUrl), node: s.nodeId, rejected: s.rejected })));
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
  get debugPort(): number { return this.ports.debug; }
  get modulePort(): number { return this.ports.module; }
  get hooksPort(): number { return this.ports.hooks; }
  /** The Prometheus exposition of this server's metrics. */
  metricsText(): Promise<string> { return this.metrics.registry.metrics(); }

  async start(): Promise<void> {
    const address = this.opts.listenAddress ?? "127.0.0.1";
    const kubernetes = "kubernetes" in this.opts.source;
    if (this.opts.metricsPort !== undefined) this.ports.http = await this.listenHttp({ serveMetrics: true }, address, this.opts.metricsPort);
    // The snapshot names every pool, endpoint and model: loopback only (kubectl port-forward reaches it).
    if (this.opts.debugPort !== undefined) this.ports.debug = await this.listenHttp({ snapshot: () => this.snapshot }, "127.0.0.1", this.opts.debugPort);
    let module: { host: string; port: number } | undefined;
    if (this.opts.moduleAdvertise) {
      this.ports.module = await this.listenHttp({ wasmPath: this.wasmPath }, address, this.opts.modulePort ?? 0);
      module = { host: this.opts.moduleAdvertise.host, port: this.opts.moduleAdvertise.port ?? this.ports.module };
    }
    const tls = this.opts.tls;
    const credentials = tls && await mtlsServerCredentials(tls.files);
    this.ports.xds = await this.xds.listen(kubernetes ? address : "127.0.0.1", this.opts.xdsPort ?? 0, credentials);
    const hooksXds = this.hooksXds(tls);
    const publisher = this.publisher = new Publisher(this.xds, {
      wasmPath: this.wasmPath,
      // Filters reach the load channel as they reach xDS: Envoy Gateway's Envoys through this
      // server's advertised address, the standalone Envoy through its bootstrap cluster.
      load: { channel: this.loadChannel, via: this.opts.hooksPort !== undefined ? hooksXds : { cluster: XDS_CLUSTER } },
      metrics: this.metrics,
      log: this.log,
      // Envoys elsewhere download the module from the HTTP listener, checked by its sha256.
      wasmRemote: module && {
        uri: `http://${module.host}:${module.port}${MODULE_PATH}`, cluster: MODULE_CLUSTER,
        sha256: createHash("sha256").update(readFileSync(this.wasmPath)).digest("hex"),
      },
    });
    const loop = this.loop = new LoadLoop(publisher, this.metrics);
    await this.source.start({
      onConfig: (config) => {
        this.config = config;
        this.rejection = [];
        this.metrics.recordReload(true);
        this.metrics.recordConfig(config);
        loop.setConfig(config);
        this.warnIfRestartNeeded(config);
        const skipped = config.problems.length > 0 ? `; left out:\n  ${config.problems.map((p) => p.text).join("\n  ")}` : "";
        this.log(`loaded ${this.source.description}: ${config.pools.length} pools, ${config.models.length} models, snapshot ${publisher.snapshot.split("\n")[1] ?? ""}${skipped}${unresolvedPickers(config)}`);
      },
      onRejected: (problems) => {
        this.rejection = problems;
        this.metrics.recordReload(false);
        this.log(`rejected ${this.source.description}; keeping the previous configuration:\n  ${problems.join("\n  ")}`);
      },
      log: this.log,
    });
    if (this.opts.hooksPort !== undefined) {
      this.hooks = new GatewayHooks({
        xds: hooksXds, config: () => this.currentConfig(), log: this.log,
        moduleCluster: module && { name: MODULE_CLUSTER, host: module.host, port: module.port },
        onPolicyFilter: (name, wasm) => publisher.setPolicyFilter(name, wasm),
        onPoolUnion: (edsName) => publisher.setPoolUnion(edsName),
      });
      this.ports.hooks = await this.hooks.listen(address, this.opts.hooksPort, tls?.plaintextHooks ? undefined : credentials);
    }
    const e = this.opts.envoy;
    if (e) {
      const bootstrap = buildBootstrap({
        listenAddress: address, adminPort: e.adminPort, plainPort: e.plainPort, inferencePort: e.inferencePort, leastRequestPort: e.leastRequestPort,
        xdsAddress: "127.0.0.1", xdsPort: this.ports.xds, wasmPath: this.wasmPath, snapshot: publisher.snapshot, config: this.currentConfig(),
      });
      const envoy = this.envoyProcess = await EnvoyProcess.start({ bootstrap, concurrency: e.concurrency, logLevel: e.logLevel });
      this.metrics.mirrorStats = () => envoy.mirrorStats();
    }
  }

  /** How Envoy Gateway's Envoys reach this server (xDS and the load channel): its advertised
   * address, with mutual TLS when it has certificates. */
  private hooksXds(tls: InfergateServerOptions["tls"]): { target: string; tls?: XdsClientTls | undefined } {
    const advertise = this.opts.xdsAdvertise;
    return {
      target: `${advertise?.host ?? "127.0.0.1"}:${advertise?.port ?? this.ports.xds}`,
      tls: tls && { serverCa: readPem(tls.serverCa ?? tls.files.ca, "TLS server CA"), certFile: join(tls.envoyCertDir, "tls.crt"), keyFile: join(tls.envoyCertDir, "tls.key") },
    };
  }

  /** Stops the control plane only; a running Envoy keeps its last snapshot. */
  async stopControlPlane(): Promise<void> {
    this.hooks?.close();
    await this.source.stop();
    this.loop?.stop();
    this.publisher?.stop();
    await this.xds.close();
    await Promise.all(this.http.map((h) => h.close()));
  }

  async stop(): Promise<void> {
    await this.envoyProcess?.stop();
    await this.stopControlPlane();
  }

  /** Standalone Envoy's listeners, routes and clusters are written once, in the bootstrap: a change
   * to them (pools, attach-to ports, HTTPRoute rules, matches, ports, mirrors and their shares)
   * needs a restart. Weights, a rule's pools, endpoints, models, objectives and rewrites apply live. */
  private warnIfRestartNeeded(config: RoutingConfig): void {
    if (!this.opts.envoy) return;
    const key = bootstrapShape(config);
    if (this.bootstrapShape === undefined) { this.bootstrapShape = key; return; }
    if (key !== this.bootstrapShape) this.log("the pools, listeners or HTTPRoute rules changed: restart infergate to apply them to Envoy (weights, endpoints, models, objectives and rewrites already apply)");
  }

  private async listenHttp(serves: Omit<HttpServerOptions, "metrics">, address: string, port: number): Promise<number> {
    const server = new HttpServer({ metrics: this.metrics, ...serves });
    this.http.push(server);
    return server.listen(address, port);
  }

  private onIgnoredNames(type: string, node: string, reason: IgnoredReason, names: string[]): void {
    const kind = xdsKind(type);
    this.metrics.xdsNamesIgnored.inc({ type: kind, reason }, names.length);
    const key = `${node}/${kind}/${reason}`;
    // Once per Envoy; past 1,000 Envoys (or forged node ids), only the metric counts.
    if (this.ignoredLogged.has(key) || this.ignoredLogged.size >= 1000) return;
    this.ignoredLogged.add(key);
    const why = reason === "unknown" ? "that infergate does not serve" : "beyond the limit per request";
    this.log(`envoy ${node || "(no node id)"} asked for ${names.length} ${kind} names ${why}, e.g. ${names.slice(0, 3).join(", ")}; not answered (counted in infergate_xds_names_ignored_total, logged once per Envoy)`);
  }

  private currentConfig(): RoutingConfig {
    if (!this.config) throw new Error("no configuration loaded yet");
    return this.config;
  }
}

/** The xDS type as the metrics' `type` label names it. */
function xdsKind(type: string): XdsKind {
  return type === TYPE_EXTENSION_CONFIG ? "ecds" : "eds";
}

/** What the standalone bootstrap is built from, beyond what reaches Envoy live (xDS). */
function bootstrapShape(config: RoutingConfig): string {
  return JSON.stringify([
    config.pools.map((p) => [p.id, p.attachTo?.port]),
    config.routes.map((r) => [r.cluster, r.ports, r.matches, r.mirrors.map((m) => [m.cluster, m.percent])]),
  ]);
}
