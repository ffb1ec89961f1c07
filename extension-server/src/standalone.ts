// Standalone mode: a YAML file is the source of truth, this process serves xDS, and (optionally)
// runs Envoy itself with a generated bootstrap.
import { createServer, type Server } from "node:http";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { FileSource } from "./config/file-source.ts";
import type { RoutingConfig } from "./config/routing-config.ts";
import { buildBootstrap } from "./envoy/bootstrap.ts";
import { EnvoyProcess } from "./envoy/process.ts";
import { ServerMetrics } from "./metrics.ts";
import { Publisher } from "./publisher.ts";
import { TYPE_EXTENSION_CONFIG, XdsServer } from "./xds/server.ts";

export const DEFAULT_WASM_PATH = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "build", "infergate.wasm");

export interface StandaloneOptions {
  configPath: string;
  wasmPath?: string;
  listenAddress?: string;
  xdsPort?: number; // 0 = ephemeral
  metricsPort?: number; // 0 = ephemeral; undefined = no metrics listener
  envoy?: { adminPort: number; plainPort: number; inferencePort?: number | undefined; leastRequestPort?: number | undefined; concurrency?: number | undefined; logLevel?: string | undefined } | undefined;
  log?: (message: string) => void;
}

export class Standalone {
  readonly metrics = new ServerMetrics();
  private readonly xds: XdsServer;
  private readonly publisher: Publisher;
  private readonly source: FileSource;
  private metricsServer?: Server;
  envoy?: EnvoyProcess;
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
    this.source = new FileSource(opts.configPath, {
      onConfig: (config) => {
        this.config = config;
        this.lastRejection = [];
        this.metrics.configReloads.inc({ result: "ok" });
        this.publisher.publish(config);
        log(`reloaded ${opts.configPath}: snapshot version ${this.publisher.version}`);
      },
      onRejected: (problems) => {
        this.lastRejection = problems;
        this.metrics.configReloads.inc({ result: "rejected" });
        log(`rejected ${opts.configPath}; keeping the previous configuration:\n  ${problems.join("\n  ")}`);
      },
    });
  }

  get xdsPort(): number { return this.xds.port; }
  get snapshot(): string { return this.publisher.snapshot; }
  get metricsPort(): number {
    const address = this.metricsServer?.address();
    return address && typeof address === "object" ? address.port : 0;
  }

  async start(): Promise<void> {
    const address = this.opts.listenAddress ?? "127.0.0.1";
    this.config = this.source.start();
    await this.xds.listen("127.0.0.1", this.opts.xdsPort ?? 0);
    this.publisher.publish(this.config);
    if (this.opts.metricsPort !== undefined) await this.serveMetrics(address, this.opts.metricsPort);
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

  private async serveMetrics(address: string, port: number): Promise<void> {
    this.metricsServer = createServer((req, res) => {
      if (req.url === "/metrics") {
        void this.metrics.registry.metrics().then((text) => {
          res.writeHead(200, { "content-type": this.metrics.registry.contentType }).end(text);
        });
      } else if (req.url === "/healthz") {
        res.writeHead(200).end("ok\n");
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
    this.source.stop();
    await this.xds.close();
    await new Promise<void>((r) => (this.metricsServer ? this.metricsServer.close(() => r()) : r()));
  }

  async stop(): Promise<void> {
    await this.envoy?.stop();
    await this.stopControlPlane();
  }
}
