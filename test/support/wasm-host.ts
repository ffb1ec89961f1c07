// A small in-process proxy-wasm ABI 0.2.1 host for fast unit tests of the compiled filter
// (build/infergate.wasm): the calls it imports, with Envoy's semantics where the filter depends on
// them (buffered bodies, prefix replacement, shared data with compare-and-swap across VMs,
// counters, local replies, gRPC streams bound to the root context). Several VMs can share one
// SharedData, as Envoy's worker threads do.
// Any host call can be made to fail with a chosen status, to test how the filter handles it.
// This host is never the only proof: test/integration runs the same module in a real Envoy.
import { readFileSync } from "node:fs";

const WASM = new URL("../../build/infergate.wasm", import.meta.url);

export const Status = { Ok: 0, NotFound: 1, BadArgument: 2, Empty: 7, CasMismatch: 8, InternalFailure: 10 } as const;

/** Envoy's process-wide shared data: per key, a value and a compare-and-swap token. */
export class SharedData {
  readonly entries = new Map<string, { value: Uint8Array; cas: number }>();
  private nextCas = 1;
  get(key: string): { value: Uint8Array; cas: number } | undefined { return this.entries.get(key); }
  set(key: string, value: Uint8Array, cas: number): number {
    const current = this.entries.get(key);
    if (cas !== 0 && current && current.cas !== cas) return Status.CasMismatch;
    this.entries.set(key, { value: Uint8Array.from(value), cas: this.nextCas++ });
    return Status.Ok;
  }
}

/** The ABI's serialized header map: count, (name length, value length)*, then NUL-terminated bytes. */
export function serializePairs(pairs: Array<[string, string]>): Uint8Array {
  const parts = pairs.flatMap(([k, v]) => [Buffer.from(k, "utf8"), Buffer.from(v, "utf8")]);
  const head = Buffer.alloc(4 + pairs.length * 8);
  head.writeUInt32LE(pairs.length, 0);
  parts.forEach((p, i) => head.writeUInt32LE(p.length, 4 + i * 4));
  return Buffer.concat([head, ...parts.flatMap((p) => [p, Buffer.from([0])])]);
}

export class Clock { nowMs = 1_700_000_000_000; }

export interface LocalReply { status: number; body: string; details: string; headers: Array<[string, string]> }

/** One request as the host sees it. */
export class HostStream {
  headers: Array<[string, string]>;
  body = new Uint8Array(0);
  localReply?: LocalReply;
  /** The action the filter returned for the last callback (0 = continue). */
  lastAction = 0;
  /** The root context it belongs to. */
  rootId = 1;
  constructor(readonly id: number, headers: Record<string, string>) {
    this.headers = Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]);
  }
  /** This stream's properties (`upstream\0address`, ...), looked up before the VM's. */
  properties = new Map<string, string>();
  /** Response headers, once responseHeaders() delivered them. */
  response: Array<[string, string]> = [];
  header(name: string): string | undefined { return this.headers.find(([k]) => k === name)?.[1]; }
  get json(): any { return JSON.parse(Buffer.from(this.body).toString("utf8")); }
}

export interface VmOptions { shared?: SharedData; clock?: Clock; wasm?: Uint8Array }

/** A gRPC stream the module opened (proxy_grpc_stream): Envoy binds it to the root context. */
export interface GrpcStream {
  token: number;
  rootId: number;
  /** The serialized GrpcService (or cluster name) it was opened with. */
  service: Uint8Array;
  serviceName: string;
  method: string;
  /** Messages the module sent, and whether it ended its side. */
  sent: Uint8Array[];
  halfClosed: boolean;
  /** Open until the module cancels it or the host closes it (grpcClose). */
  open: boolean;
}

export class WasmVm {
  readonly shared: SharedData;
  readonly clock: Clock;
  readonly logs: Array<[number, string]> = [];
  readonly counters = new Map<string, number>();
  /** Calls across the VM boundary so far, by function: host calls the module made, and module
   * functions the host called (callbacks, and the allocator each returned value needs). */
  readonly calls = new Map<string, number>();
  /** Host calls to fail: function name → status to return instead. */
  readonly failures = new Map<string, number>();
  /** Properties the host answers (path segments joined by "\0"), e.g. "xds\0cluster_name". */
  readonly properties = new Map<string, string>();
  private readonly metricNames: string[] = [];
  private readonly exports: Record<string, any>;
  private readonly streams = new Map<number, HostStream>();
  private current?: HostStream;
  private pluginConfig = new Uint8Array(0);
  private nextContext = 100;
  /** gRPC streams the module opened, by token. */
  readonly grpcStreams = new Map<number, GrpcStream>();
  private nextGrpcToken = 1;
  /** The message being delivered (buffer type 5), during proxy_on_grpc_receive. */
  private grpcMessage?: Uint8Array;
  /** The root context of the callback running now (a stream's parent, or the root itself). */
  private activeRoot = 0;

  constructor(opts: VmOptions = {}) {
    this.shared = opts.shared ?? new SharedData();
    this.clock = opts.clock ?? new Clock();
    const module = new WebAssembly.Module(Uint8Array.from(opts.wasm ?? readFileSync(WASM)));
    // Every call across the VM boundary is counted by name (a crossing costs Envoy a few µs).
    const counted = <F extends (...args: any[]) => any>(name: string, fn: F) => (...args: Parameters<F>): ReturnType<F> => {
      this.calls.set(name, (this.calls.get(name) ?? 0) + 1);
      return fn(...args);
    };
    const imports = Object.fromEntries(Object.entries(this.imports()).map(([name, fn]) => [name, counted(name, fn)]));
    const instance = new WebAssembly.Instance(module, { env: imports });
    this.exports = Object.fromEntries(Object.entries(instance.exports).map(([name, e]) => [name, typeof e === "function" && name.startsWith("proxy_") ? counted(name, e as (...args: any[]) => any) : e]));
    this.exports._initialize?.();
  }

  /** Size of the module's linear memory, in bytes (it only grows). */
  get memoryBytes(): number { return (this.exports.memory as WebAssembly.Memory).buffer.byteLength; }
  private get memory(): Uint8Array { return new Uint8Array((this.exports.memory as WebAssembly.Memory).buffer); }
  private get view(): DataView { return new DataView((this.exports.memory as WebAssembly.Memory).buffer); }
  private read(ptr: number, len: number): Uint8Array { return this.memory.slice(ptr, ptr + len); }
  private text(ptr: number, len: number): string { return Buffer.from(this.read(ptr, len)).toString("utf8"); }

  /** Copies bytes into memory the module allocates (as Envoy does) and writes (ptr, len) out. */
  private give(bytes: Uint8Array, ptrOut: number, lenOut: number): void {
    const ptr = Number(this.exports.proxy_on_memory_allocate(Math.max(1, bytes.length)));
    this.memory.set(bytes, ptr);
    this.view.setUint32(ptrOut, ptr, true);
    this.view.setUint32(lenOut, bytes.length, true);
  }

  private fail(name: string): number | undefined { return this.failures.get(name); }

  private imports(): Record<string, (...args: any[]) => number> {
    const stream = (): HostStream => {
      if (!this.current) throw new Error("no current stream");
      return this.current;
    };
    return {
      proxy_log: (level: number, ptr: number, len: number) => { this.logs.push([level, this.text(ptr, len)]); return Status.Ok; },
      proxy_get_property: (pPtr: number, pLen: number, ptrOut: number, lenOut: number) => {
        const f = this.fail("proxy_get_property");
        if (f !== undefined) return f;
        const path = this.text(pPtr, pLen);
        const value = this.current?.properties.get(path) ?? this.properties.get(path);
        if (value === undefined) return Status.NotFound;
        this.give(Buffer.from(value, "utf8"), ptrOut, lenOut);
        return Status.Ok;
      },
      proxy_get_current_time_nanoseconds: (out: number) => { this.view.setBigUint64(out, BigInt(this.clock.nowMs) * 1_000_000n, true); return Status.Ok; },
      proxy_get_buffer_bytes: (type: number, start: number, max: number, ptrOut: number, lenOut: number) => {
        const f = this.fail("proxy_get_buffer_bytes");
        if (f !== undefined) return f;
        const source = type === 7 ? this.pluginConfig : type === 5 ? this.grpcMessage : type === 0 ? stream().body : undefined;
        if (!source) return Status.NotFound;
        if (start >= source.length) return Status.NotFound;
        this.give(source.subarray(start, Math.min(source.length, start + max)), ptrOut, lenOut);
        return Status.Ok;
      },
      proxy_set_buffer_bytes: (type: number, start: number, length: number, ptr: number, len: number) => {
        const f = this.fail("proxy_set_buffer_bytes");
        if (f !== undefined) return f;
        if (type !== 0 || start !== 0) return Status.BadArgument;
        const s = stream();
        // Envoy: drain `length` bytes from the front, then prepend the data.
        s.body = Uint8Array.from([...this.read(ptr, len), ...s.body.subarray(length)]);
        return Status.Ok;
      },
      proxy_get_header_map_value: (map: number, kPtr: number, kLen: number, ptrOut: number, lenOut: number) => {
        const f = this.fail("proxy_get_header_map_value");
        if (f !== undefined) return f;
        const name = this.text(kPtr, kLen);
        const value = map === 0 ? stream().header(name) : map === 2 ? stream().response.find(([k]) => k === name)?.[1] : undefined;
        if (value === undefined) return Status.NotFound;
        this.give(Buffer.from(value, "utf8"), ptrOut, lenOut);
        return Status.Ok;
      },
      proxy_get_header_map_pairs: (map: number, ptrOut: number, lenOut: number) => {
        const f = this.fail("proxy_get_header_map_pairs");
        if (f !== undefined) return f;
        const pairs = map === 0 ? stream().headers : map === 2 ? stream().response : [];
        this.give(serializePairs(pairs), ptrOut, lenOut);
        return Status.Ok;
      },
      proxy_replace_header_map_value: (_map: number, kPtr: number, kLen: number, vPtr: number, vLen: number) => {
        const f = this.fail("proxy_replace_header_map_value");
        if (f !== undefined) return f;
        const s = stream();
        const name = this.text(kPtr, kLen);
        s.headers = s.headers.filter(([k]) => k !== name);
        s.headers.push([name, this.text(vPtr, vLen)]);
        return Status.Ok;
      },
      proxy_remove_header_map_value: (_map: number, kPtr: number, kLen: number) => {
        const f = this.fail("proxy_remove_header_map_value");
        if (f !== undefined) return f;
        const s = stream();
        const name = this.text(kPtr, kLen);
        s.headers = s.headers.filter(([k]) => k !== name);
        return Status.Ok;
      },
      proxy_send_local_response: (status: number, dPtr: number, dLen: number, bPtr: number, bLen: number, hPtr: number, hLen: number) => {
        const s = stream();
        const headers: Array<[string, string]> = [];
        const raw = this.read(hPtr, hLen);
        const v = new DataView(raw.buffer);
        const n = v.getUint32(0, true);
        let at = 4 + n * 8;
        for (let i = 0; i < n; i++) {
          const kl = v.getUint32(4 + i * 8, true);
          const vl = v.getUint32(8 + i * 8, true);
          const k = Buffer.from(raw.subarray(at, at + kl)).toString(); at += kl + 1;
          const val = Buffer.from(raw.subarray(at, at + vl)).toString(); at += vl + 1;
          headers.push([k, val]);
        }
        s.localReply = { status, details: this.text(dPtr, dLen), body: this.text(bPtr, bLen), headers };
        return this.fail("proxy_send_local_response") ?? Status.Ok;
      },
      proxy_get_shared_data: (kPtr: number, kLen: number, ptrOut: number, lenOut: number, casOut: number) => {
        const f = this.fail("proxy_get_shared_data");
        if (f !== undefined) return f;
        const entry = this.shared.get(this.text(kPtr, kLen));
        if (!entry) return Status.NotFound;
        this.give(entry.value, ptrOut, lenOut);
        this.view.setUint32(casOut, entry.cas, true);
        return Status.Ok;
      },
      proxy_set_shared_data: (kPtr: number, kLen: number, vPtr: number, vLen: number, cas: number) => {
        const f = this.fail("proxy_set_shared_data");
        if (f !== undefined) return f;
        return this.shared.set(this.text(kPtr, kLen), this.read(vPtr, vLen), cas);
      },
      proxy_grpc_stream: (sPtr: number, sLen: number, nPtr: number, nLen: number, mPtr: number, mLen: number, _mdPtr: number, _mdLen: number, tokenOut: number) => {
        const f = this.fail("proxy_grpc_stream");
        if (f !== undefined) return f;
        const token = this.nextGrpcToken++;
        this.grpcStreams.set(token, {
          token, rootId: this.activeRoot, service: this.read(sPtr, sLen), serviceName: this.text(nPtr, nLen), method: this.text(mPtr, mLen),
          sent: [], halfClosed: false, open: true,
        });
        this.view.setUint32(tokenOut, token, true);
        return Status.Ok;
      },
      proxy_grpc_send: (token: number, ptr: number, len: number, endStream: number) => {
        const f = this.fail("proxy_grpc_send");
        if (f !== undefined) return f;
        const g = this.grpcStreams.get(token);
        if (!g || !g.open) return Status.NotFound;
        g.sent.push(this.read(ptr, len));
        g.halfClosed ||= endStream !== 0;
        return Status.Ok;
      },
      proxy_grpc_cancel: (token: number) => {
        const g = this.grpcStreams.get(token);
        if (!g || !g.open) return Status.NotFound;
        g.open = false;
        return Status.Ok;
      },
      proxy_define_metric: (_type: number, nPtr: number, nLen: number, idOut: number) => {
        const name = this.text(nPtr, nLen);
        let id = this.metricNames.indexOf(name);
        if (id < 0) { id = this.metricNames.length; this.metricNames.push(name); }
        this.view.setUint32(idOut, id, true);
        return Status.Ok;
      },
      proxy_increment_metric: (id: number, delta: bigint) => {
        const name = this.metricNames[id]!;
        this.counters.set(name, (this.counters.get(name) ?? 0) + Number(delta));
        return Status.Ok;
      },
    };
  }

  /** Starts a root context with a snapshot, as Envoy does for each plugin configuration. */
  configure(snapshot: string, rootId = 1): boolean {
    this.pluginConfig = Buffer.from(snapshot, "utf8");
    this.activeRoot = rootId;
    this.exports.proxy_on_vm_start(rootId, 0);
    this.exports.proxy_on_context_create(rootId, 0);
    return Boolean(this.exports.proxy_on_configure(rootId, this.pluginConfig.length));
  }

  /** Deletes a root context, as Envoy does when its plugin configuration is replaced; Envoy resets
   * the root's gRPC streams without a callback. */
  deleteRoot(rootId: number): void {
    this.exports.proxy_on_delete(rootId);
    for (const g of this.grpcStreams.values()) if (g.rootId === rootId) g.open = false;
  }

  /** Delivers a message on an open gRPC stream (to its root context). */
  grpcReceive(token: number, message: Uint8Array): void {
    const g = this.grpcStreams.get(token);
    if (!g?.open) throw new Error(`gRPC stream ${token} is not open`);
    this.grpcMessage = message;
    this.activeRoot = g.rootId;
    try { this.exports.proxy_on_grpc_receive(g.rootId, token, message.length); } finally { this.grpcMessage = undefined; }
  }

  /** Closes an open gRPC stream from the far side, with a gRPC status. */
  grpcClose(token: number, status: number): void {
    const g = this.grpcStreams.get(token);
    if (!g?.open) throw new Error(`gRPC stream ${token} is not open`);
    g.open = false;
    this.activeRoot = g.rootId;
    this.exports.proxy_on_grpc_close(g.rootId, token, status);
  }

  /** The streams open now. */
  openGrpcStreams(): GrpcStream[] { return [...this.grpcStreams.values()].filter((g) => g.open); }


  /** Opens a stream under `rootId`. */
  open(headers: Record<string, string>, rootId = 1): HostStream {
    const s = new HostStream(this.nextContext++, headers);
    s.rootId = rootId;
    this.streams.set(s.id, s);
    this.activeRoot = rootId;
    this.exports.proxy_on_context_create(s.id, rootId);
    return s;
  }

  private on<T>(s: HostStream, call: () => T): T {
    this.current = s;
    this.activeRoot = s.rootId;
    try { return call(); } finally { this.current = undefined; }
  }

  /** Delivers request headers; true when the filter let them continue. */
  headers(s: HostStream, endOfStream: boolean): number {
    s.lastAction = this.on(s, () => this.exports.proxy_on_request_headers(s.id, s.headers.length, endOfStream ? 1 : 0));
    return s.lastAction;
  }

  /** Appends a body chunk (Envoy hands the filter the whole buffered body each time it buffers). */
  body(s: HostStream, chunk: Uint8Array | string, endOfStream: boolean): number {
    s.body = Uint8Array.from([...s.body, ...(typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk)]);
    s.lastAction = this.on(s, () => this.exports.proxy_on_request_body(s.id, s.body.length, endOfStream ? 1 : 0));
    return s.lastAction;
  }

  trailers(s: HostStream): number {
    s.lastAction = this.on(s, () => this.exports.proxy_on_request_trailers(s.id, 1));
    return s.lastAction;
  }

  /** Delivers the upstream's response headers. */
  responseHeaders(s: HostStream, headers: Record<string, string>): void {
    s.response = Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]);
    this.on(s, () => this.exports.proxy_on_response_headers?.(s.id, s.response.length, 0));
  }

  /** Delivers a chunk of the upstream's answer (`endOfStream`: its last). */
  responseBody(s: HostStream, endOfStream = false): void { this.on(s, () => this.exports.proxy_on_response_body(s.id, 10, endOfStream ? 1 : 0)); }

  /** Ends the stream as Envoy does: on_done (when the module exports it), then on_delete. */
  finish(s: HostStream): void {
    this.on(s, () => { this.exports.proxy_on_done?.(s.id); this.exports.proxy_on_delete(s.id); });
    this.streams.delete(s.id);
  }

  /** A whole request: headers, then the body in one chunk (or none). */
  request(path: string, body: string | Uint8Array | undefined, headers: Record<string, string> = {}): HostStream {
    const s = this.open({ ":method": "POST", ":path": path, ...(body !== undefined ? { "content-length": String(typeof body === "string" ? Buffer.byteLength(body) : body.length) } : {}), ...headers });
    this.headers(s, body === undefined);
    if (body !== undefined && !s.localReply) this.body(s, body, true);
    return s;
  }
}
