// A minimal Kubernetes API server for testing watch logic over real HTTP: LIST and WATCH (JSON
// event lines) for the resources a test declares, 404 for the rest (an unserved CRD version), and
// status PATCHes recorded. The objects are what a real API server returns for these resources.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

type Obj = { metadata: { name: string; namespace?: string; resourceVersion?: string; generation?: number; labels?: Record<string, string> }; [k: string]: unknown };

export interface PatchRecord { path: string; contentType: string; body: any }

export class FakeKubeApi {
  private readonly collections = new Map<string, Map<string, Obj>>();
  private readonly watchers = new Map<string, Set<ServerResponse>>();
  readonly patches: PatchRecord[] = [];
  /** Status PATCHes to paths this matches are refused (422), as an API server refuses an invalid status. */
  refusePatch: (path: string) => boolean = () => false;
  private version = 1;
  private server?: Server;
  url = "";

  /** Declares a served collection path, e.g. /apis/inference.networking.x-k8s.io/v1alpha2/inferencepools. */
  serve(path: string, objects: Obj[] = []): void {
    this.collections.set(path, new Map(objects.map((o) => [key(o), this.stamp(o)])));
  }

  upsert(path: string, obj: Obj): void {
    const items = this.collections.get(path)!;
    const type = items.has(key(obj)) ? "MODIFIED" : "ADDED";
    const stamped = this.stamp(obj);
    items.set(key(obj), stamped);
    this.emit(path, type, stamped);
  }

  remove(path: string, namespace: string, name: string): void {
    const items = this.collections.get(path)!;
    const obj = items.get(`${namespace}/${name}`);
    if (!obj) return;
    items.delete(`${namespace}/${name}`);
    this.emit(path, "DELETED", this.stamp(obj));
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    for (const set of this.watchers.values()) for (const res of set) res.end();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r());
  }

  private stamp(obj: Obj): Obj {
    return { ...obj, metadata: { namespace: "default", generation: 1, ...obj.metadata, resourceVersion: String(++this.version) } };
  }

  private emit(path: string, type: string, object: Obj): void {
    for (const res of this.watchers.get(path) ?? []) res.write(`${JSON.stringify({ type, object })}\n`);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://x");
    if (req.method === "PATCH" && url.pathname.endsWith("/status")) {
      let body = "";
      req.on("data", (c) => (body += c)).on("end", () => {
        if (this.refusePatch(url.pathname)) {
          res.writeHead(422, { "content-type": "application/json" }).end(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", reason: "Invalid", code: 422 }));
          return;
        }
        this.patches.push({ path: url.pathname, contentType: String(req.headers["content-type"]), body: JSON.parse(body) });
        res.writeHead(200, { "content-type": "application/json" }).end(body);
      });
      return;
    }
    const items = this.collections.get(url.pathname);
    if (req.method !== "GET" || !items) {
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", reason: "NotFound", code: 404 }));
      return;
    }
    if (url.searchParams.get("watch") === "true") {
      res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
      res.flushHeaders(); // a watch answers at once, then streams events
      const set = this.watchers.get(url.pathname) ?? new Set();
      set.add(res);
      this.watchers.set(url.pathname, set);
      res.on("close", () => set.delete(res));
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({
      kind: "List", apiVersion: "v1", metadata: { resourceVersion: String(this.version) }, items: [...items.values()],
    }));
  }
}

function key(o: Obj): string {
  return `${o.metadata.namespace ?? "default"}/${o.metadata.name}`;
}
