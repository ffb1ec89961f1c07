// The replicas' scraped load (each pool's endpoints, scores and saturation: the load text of
// core/snapshot.ts) reaches the filter outside its plugin configuration, on a gRPC stream that each
// root context holds to the extension server (`infergate.load.v1.LoadChannel/Watch`,
// proto/infergate/load.proto; the snapshot's `load-channel` record says how to reach it). The
// server writes each new load to every stream as it is scraped; the filter applies it to every
// snapshot this VM routes on as it arrives. A request reads nothing: the load is already in place
// (reading it per request cost every request ~24 µs: bench/peers/EPP.md).
//
// Why not in the plugin configuration: Envoy builds a new Wasm plugin for every new plugin
// configuration and keeps a few hundred bytes of each for good, which a push per scrape would add
// up to (core/snapshot.ts).
//
// A new root context (one per snapshot push) starts from the last load this VM received, then opens
// its own stream, whose first message is the server's current load. When a stream closes (the
// server restarted or is down), its root keeps routing on the last load, and the first request
// after a back-off (250 ms, doubling to 4 s; reset by a message) opens it again. No timer: Envoy
// keeps one for every root context that ever set one, and a root context is made per push.
import { decodeLoadMessage, encodeWatchRequest } from "./core/load_message";
import { count, LOAD_APPLIED, LOAD_REJECTED } from "./counters";
import { parseLoad, Snapshot } from "./core/snapshot";
import { borrowBufferBytes, BufferType, currentTimeNanos, grpcCancel, grpcSend, grpcStream, log, LogLevel, Status } from "./host/api";

/** The gRPC service and method: the contract with extension-server/src/contract.ts (contract test). */
export const LOAD_SERVICE = "infergate.load.v1.LoadChannel";
export const LOAD_METHOD = "Watch";
export const FIRST_RETRY_MS: u64 = 250;
export const MAX_RETRY_MS: u64 = 4000;

/** One root context's stream. */
export class Channel {
  token: u32 = 0;
  open: bool = false;
  /** Whether a message arrived since the stream last (re)opened. */
  delivered: bool = false;
  retryAtMs: u64 = 0;
  retryMs: u64 = FIRST_RETRY_MS;
  /** `service`: the serialized GrpcService from the snapshot (null: it names no channel);
   * `snapshotVersion`: the snapshot's version, sent in the stream's one request. */
  constructor(public service: ArrayBuffer | null, public snapshotVersion: string) {}
}

/** The last load this VM received, on any root's stream. */
class Latest {
  version: string = "";
  load: Snapshot | null = null;
}
const latest = new Latest();

function nowMs(): u64 {
  return currentTimeNanos() / 1_000_000;
}

/** Brings a new root's snapshot up to the last load this VM received. */
export function startFromLatest(snapshot: Snapshot): void {
  const load = latest.load;
  if (load !== null) snapshot.applyLoad(load);
}

/** Opens `c`'s stream; on failure, schedules the next attempt. */
export function openChannel(c: Channel): void {
  const service = c.service;
  if (service === null) return;
  const opened = grpcStream(service, LOAD_SERVICE, LOAD_METHOD);
  if (opened.status != Status.Ok) {
    retryLater(c, "cannot open the load channel: status " + opened.status.toString());
    return;
  }
  const sent = grpcSend(opened.token, encodeWatchRequest(c.snapshotVersion), true);
  if (sent != Status.Ok) {
    grpcCancel(opened.token);
    retryLater(c, "cannot ask the load channel for the load: status " + sent.toString());
    return;
  }
  c.token = opened.token;
  c.open = true;
  c.delivered = false;
}

/** Per request while `c` is closed: reopens it once the back-off has passed. */
export function reopenIfDue(c: Channel): void {
  if (c.open || c.service === null || nowMs() < c.retryAtMs) return;
  openChannel(c);
}

/**
 * A message on `c`'s stream: returns the load to apply to every root's snapshot, or null (a load
 * this VM already has, or one that does not decode or parse: logged, and the last load stays).
 */
export function receiveLoad(c: Channel, token: u32, size: usize): Snapshot | null {
  if (!c.open || token != c.token) return null;
  c.delivered = true;
  c.retryMs = FIRST_RETRY_MS;
  const bytes = borrowBufferBytes(BufferType.GrpcReceive, 0, size);
  if (bytes.status != Status.Ok) {
    log(LogLevel.Warn, "infergate: cannot read a load message: status " + bytes.status.toString());
    return null;
  }
  const m = decodeLoadMessage(bytes.ptr, bytes.len);
  bytes.free();
  if (m.error.length > 0) {
    log(LogLevel.Error, "infergate: rejected a load message: " + m.error);
    count(LOAD_REJECTED);
    return null;
  }
  if (m.version == latest.version) return null;
  latest.version = m.version;
  const parsed = parseLoad(m.text);
  if (parsed.snapshot === null) {
    log(LogLevel.Error, "infergate: rejected load " + m.version + ": " + parsed.error);
    count(LOAD_REJECTED);
    return null;
  }
  latest.load = parsed.snapshot;
  count(LOAD_APPLIED);
  return parsed.snapshot;
}

/** `c`'s stream ended (`status`: its gRPC status). */
export function channelClosed(c: Channel, token: u32, status: u32): void {
  if (!c.open || token != c.token) return;
  c.open = false;
  retryLater(c, "the load channel closed (gRPC status " + status.toString() + ")");
}

function retryLater(c: Channel, why: string): void {
  // A stream that worked is worth a warning; repeated failures while the server is away are not.
  const level = c.delivered || c.retryMs == FIRST_RETRY_MS ? LogLevel.Warn : LogLevel.Debug;
  log(level, "infergate: " + why + "; routing on the last load, retrying in " + c.retryMs.toString() + " ms");
  c.delivered = false;
  c.retryAtMs = nowMs() + c.retryMs;
  c.retryMs = min(c.retryMs * 2, MAX_RETRY_MS);
}
