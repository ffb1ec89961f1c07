// The extension server's plain HTTP listeners. Each serves what it is given: Prometheus /metrics
// and /healthz, the snapshot being served (/snapshot), or the compiled filter module for Envoys on
// other hosts (MODULE_PATH). The composition root (server.ts) keeps them apart: the snapshot names
// every pool, endpoint and model, so it is served on loopback only, and the module on a port of
// its own that only Envoys need to reach.
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { ServerMetrics } from "./metrics.ts";

/** Where the filter module is served, for Envoys on other hosts. */
export const MODULE_PATH = "/filter/infergate.wasm";

export interface HttpServerOptions {
  metrics: ServerMetrics;
  /** Serve /metrics and /healthz. */
  serveMetrics?: boolean | undefined;
  /** Serve the snapshot text being served at /snapshot. */
  snapshot?: (() => string) | undefined;
  /** Serve this module at MODULE_PATH. */
  wasmPath?: string | undefined;
}

export class HttpServer {
  private readonly server: Server;

  constructor(opts: HttpServerOptions) {
    this.server = createServer((req, res) => {
      if (opts.serveMetrics && req.url === "/metrics") {
        void opts.metrics.registry.metrics().then((text) => {
          res.writeHead(200, { "content-type": opts.metrics.registry.contentType }).end(text);
        });
      } else if (opts.serveMetrics && req.url === "/healthz") {
        res.writeHead(200).end("ok\n");
      } else if (opts.wasmPath && req.url === MODULE_PATH) {
        opts.metrics.moduleDownloads.inc();
        // Read on every request: a rebuilt module is served at once.
        res.writeHead(200, { "content-type": "application/wasm" }).end(readFileSync(opts.wasmPath));
      } else if (opts.snapshot && req.url === "/snapshot") {
        res.writeHead(200, { "content-type": "text/plain" }).end(opts.snapshot());
      } else {
        res.writeHead(404).end();
      }
    });
  }

  async listen(address: string, port: number): Promise<number> {
    await new Promise<void>((r) => this.server.listen(port, address, r));
    return this.port;
  }

  get port(): number {
    const address = this.server.address();
    return address && typeof address === "object" ? address.port : 0;
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
