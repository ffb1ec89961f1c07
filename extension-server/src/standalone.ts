// Standalone mode: a YAML file is the source of truth, this process serves xDS, and (optionally)
// runs Envoy itself with a generated bootstrap.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { KubeConfig } from "@kubernetes/client-node";
import { FileSource } from "./config/file-source.ts";
import { KubeSource } from "./config/kube-source.ts";
import { ConfigError, type RoutingConfig } from "./config/routing-config.ts";
import { buildBootstrap } from "./envoy/bootstrap.ts";
import { EnvoyProcess } from "./envoy/process.ts";
import { ServerMetrics } from "./metrics.ts";
import { Publisher } from "./publisher.ts";
import { Scraper } from "./load/scraper.ts";
import { computeLoadView } from "./scheduling/scheduler.ts";
import { GatewayHooks } from "./gateway/hooks.ts";
import { endpointAddress } from "./snapshot.ts";
import { TYPE_EXTENSION_CONFIG, XdsServer } from "./xds/server.ts";

/** Where the metrics listener serves the compiled filter, for Envoys on other hosts. */
export const MODULE_PATH = "/filter/infergate.wasm";

export const DEFAULT_WASM_PATH = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "build", "infergate.wasm");

export interface StandaloneOptions {
  /** The YAML file to serve (standalone), unless `kubernetes` is given. */
  configPath: string;
  /** Read InferencePools, InferenceModels and Pods from this cluster instead of a file. */
  kubernetes?: KubeConfig | undefined;
  wasmPath?: string;
  listenAddress?: string;
  xdsPort?: number; // 0 = ephemeral
  metricsPort?: number; // 0 = ephemeral; undefined = no metrics listener
  envoy?: { adminPort: number; plainPort: number; inferencePort?: number | undefined; leastRequestPort?: number | undefined; concurrency?: number | undefined; logLevel?: string | undefined } | undefined;
  /** Serve Envoy Gateway's extension hooks on this port (0 = ephemeral); Envoy Gateway runs Envoy. */
  hooksPort?: number | undefined;
  /** How the Envoys Envoy Gateway runs reach this server's xDS (default 127.0.0.1:<xds port>). */
  xdsAdvertise?: { host: string; port?: number } | undefined;
  /** Envoys elsewhere fetch the filter module from this server's metrics port, at this host. */
  moduleAdvertise?: { host: string; port?: number } | undefined;
  log?: (message: string) => void;
}

export class Standalone {
  readonly metrics = new ServerMetrics();
  private readonly xds: XdsServer;
  private readonly publisher: Publisher;
  private readonly source: FileSource;
  private kube?: KubeSource;
  private metricsServer?: Server;
  envoy?: EnvoyProcess;
  hooks?: GatewayHooks;
  hooksPort = 0;
  private scraper?: Scraper;
  private scrapeSettings = "";
  private refreshQueued = false;
  config!: RoutingConfig;
  /** Reasons the last rejected configuration was rejected (empty once a good one loads). */
  lastRejection: string[] = [];

  constructor(private readonly opts: StandaloneOptions) {
    const log = opts.log ?? ((m: string) => console.error(m));
    this.xds = new XdsServer({
      onAck: (type, version, node, error) => {
        const kind = type === TYPE_EXTENSION_CONFIG ? "ecds" : "eds";
        this.metrics.xdsResponses.inc({ type: kind, result: error ? "nack" : "ack" });
        if (error) log(`envoy ${node} rejected ${kind} version ${version}: ${error}`);
      },
    });
    this.publisher = new Publisher(this.xds, resolve(opts.wasmPath ?? DEFAULT_WASM_PATH), this.metrics);
    const source = opts.kubernetes ? "the cluster's resources" : opts.configPath;
    const events = {
      onConfig: (config: RoutingConfig) => {
        this.config = config;
        this.lastRejection = [];
        this.metrics.configReloads.inc({ result: "ok" });
        this.applyConfig(config);
        log(`reloaded ${source}: snapshot version ${this.publisher.version}`);
      },
      onRejected: (problems: string[]) => {
        this.lastRejection = problems;
        this.metrics.configReloads.inc({ result: "rejected" });
        log(`rejected ${source}; keeping the previous configuration:\n  ${problems.join("\n  ")}`);
      },
      log,
    };
    this.source = new FileSource(opts.configPath, events);
    if (opts.kubernetes) this.kube = new KubeSource(opts.kubernetes, events);
  }

  get xdsPort(): number { return this.xds.port; }

  private wasmBytes(): Buffer {
    return readFileSync(resolve(this.opts.wasmPath ?? DEFAULT_WASM_PATH));
  }
  get snapshot(): string { return this.publisher.snapshot; }
  get metricsPort(): number {
    const address = this.metricsServer?.address();
    return address && typeof address === "object" ? address.port : 0;
  }

  async start(): Promise<void> {
    const address = this.opts.listenAddress ?? "127.0.0.1";
    if (this.opts.metricsPort !== undefined) await this.serveMetrics(address, this.opts.metricsPort);
    // Envoys elsewhere download the module from the metrics listener (checked by its sha256).
    const module = this.opts.moduleAdvertise ? { name: "infergate_module", host: this.opts.moduleAdvertise.host, port: this.opts.moduleAdvertise.port ?? this.metricsPort } : undefined;
    if (module) this.publisher.wasmRemote = { uri: `http://${module.host}:${module.port}${MODULE_PATH}`, cluster: module.name, sha256: createHash("sha256").update(this.wasmBytes()).digest("hex") };
    await this.xds.listen(this.opts.kubernetes ? address : "127.0.0.1", this.opts.xdsPort ?? 0);
    if (this.kube) {
      await this.kube.start(); // publishes through onConfig once the informers have listed
      if (!this.kube.current) throw new ConfigError(this.lastRejection.length ? this.lastRejection : ["no valid InferencePool in the cluster"]);
    } else {
      this.config = this.source.start();
      this.applyConfig(this.config);
    }
    if (this.opts.hooksPort !== undefined) {
      const advertise = this.opts.xdsAdvertise;
      this.hooks = new GatewayHooks({ xdsHost: advertise?.host ?? "127.0.0.1", xdsPort: advertise?.port ?? this.xds.port, config: () => this.config, moduleCluster: module, log: this.opts.log });
      this.hooksPort = await this.hooks.listen(address, this.opts.hooksPort);
    }
    const e = this.opts.envoy;
    if (e) {
      const bootstrap = buildBootstrap({
        listenAddress: address, adminPort: e.adminPort, plainPort: e.plainPort, inferencePort: e.inferencePort, leastRequestPort: e.leastRequestPort,
        xdsAddress: "127.0.0.1", xdsPort: this.xds.port,
        wasmPath: resolve(this.opts.wasmPath ?? DEFAULT_WASM_PATH), snapshot: this.publisher.snapshot, config: this.config,
      });
      this.envoy = await EnvoyProcess.start({ bootstrap, concurrency: e.concurrency, logLevel: e.logLevel });
    }
  }

  /** Points the scraper at the configuration's endpoints and publishes the configuration. */
  private applyConfig(config: RoutingConfig): void {
    const settings = JSON.stringify(config.scheduler.scrape);
    if (settings !== this.scrapeSettings) {
      this.scraper?.stop();
      this.scraper = new Scraper(config.scheduler.scrape, () => this.queueRefresh());
      this.scrapeSettings = settings;
    }
    this.scraper!.setEndpoints(config.pools.flatMap((p) => p.endpoints.map(endpointAddress)));
    this.publisher.setConfig(config, computeLoadView(config, this.scraper!));
  }

  /** Scrapes complete one endpoint at a time; recompute once per turn of the event loop. */
  private queueRefresh(): void {
    if (this.refreshQueued) return;
    this.refreshQueued = true;
    setImmediate(() => {
      this.refreshQueued = false;
      if (!this.scraper) return;
      const view = computeLoadView(this.config, this.scraper);
      this.publisher.setLoad(view);
      this.recordLoadMetrics(view);
    });
  }

  private recordLoadMetrics(view: ReturnType<typeof computeLoadView>): void {
    for (const pool of this.config.pools) {
      this.metrics.poolSaturation.set({ pool: pool.name }, view.saturation(pool.name));
      for (const e of pool.endpoints) {
        const endpoint = endpointAddress(e);
        const labels = { pool: pool.name, endpoint };
        const reading = this.scraper?.reading(endpoint);
        this.metrics.endpointReady.set(labels, this.scraper?.isReady(endpoint) ? 1 : 0);
        this.metrics.endpointWaiting.set(labels, reading?.load?.waiting ?? 0);
        this.metrics.endpointKvUsage.set(labels, reading?.load?.kvUsage ?? 0);
        const v = view.endpoint(endpoint);
        if (v) this.metrics.endpointScore.set(labels, v.score);
        else this.metrics.endpointScore.remove(labels);
      }
    }
  }

  private async serveMetrics(address: string, port: number): Promise<void> {
    this.metricsServer = createServer((req, res) => {
      if (req.url === "/metrics") {
        void this.metrics.registry.metrics().then((text) => {
          res.writeHead(200, { "content-type": this.metrics.registry.contentType }).end(text);
        });
      } else if (req.url === "/healthz") {
        res.writeHead(200).end("ok\n");
      } else if (req.url === MODULE_PATH) {
        this.metrics.moduleDownloads.inc();
        res.writeHead(200, { "content-type": "application/wasm" }).end(this.wasmBytes());
      } else if (req.url === "/snapshot") {
        res.writeHead(200, { "content-type": "text/plain" }).end(this.publisher.snapshot);
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => this.metricsServer!.listen(port, address, r));
  }

  /** Stops the control plane only; a running Envoy keeps its last snapshot (used by tests). */
  async stopControlPlane(): Promise<void> {
    this.hooks?.close();
    this.source.stop();
    await this.kube?.stop();
    this.scraper?.stop();
    this.scraper = undefined;
    this.publisher.stop();
    await this.xds.close();
    await new Promise<void>((r) => (this.metricsServer ? this.metricsServer.close(() => r()) : r()));
  }

  async stop(): Promise<void> {
    await this.envoy?.stop();
    await this.stopControlPlane();
  }
}
