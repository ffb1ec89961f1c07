// The extension server's plain HTTP listener: Prometheus /metrics, /healthz, the snapshot being
// served (/snapshot), and the compiled filter module for Envoys on other hosts (MODULE_PATH).
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { ServerMetrics } from "./metrics.ts";

/** Where the filter module is served, for Envoys on other hosts. */
export const MODULE_PATH = "/filter/infergate.wasm";

export interface HttpServerOptions {
  metrics: ServerMetrics;
  /** The snapshot text being served. */
  snapshot: () => string;
  wasmPath: string;
}

export class HttpServer {
  private readonly server: Server;

  constructor(private readonly opts: HttpServerOptions) {
    this.server = createServer((req, res) => {
      if (req.url === "/metrics") {
        void opts.metrics.registry.metrics().then((text) => {
          res.writeHead(200, { "content-type": opts.metrics.registry.contentType }).end(text);
        });
      } else if (req.url === "/healthz") {
        res.writeHead(200).end("ok\n");
      } else if (req.url === MODULE_PATH) {
        opts.metrics.moduleDownloads.inc();
        res.writeHead(200, { "content-type": "application/wasm" }).end(this.wasmBytes());
      } else if (req.url === "/snapshot") {
        res.writeHead(200, { "content-type": "text/plain" }).end(opts.snapshot());
      } else {
        res.writeHead(404).end();
      }
    });
  }

  /** The module as served (read on every request: a rebuilt module is served at once). */
  wasmBytes(): Buffer {
    return readFileSync(this.opts.wasmPath);
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
