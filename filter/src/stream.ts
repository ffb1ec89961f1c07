// Per-request state machine, in the manner of Envoy's own filters:
//
//   Start --(not an inference route)----------------------------------------> Passthrough
//   Start --(inference route, body follows)--> ReadingBody --(whole body, valid)--> Routed
//                                                   \--(bad body, unknown model, ...)--> Rejected (local reply)
//
// Headers are held (StopIteration, with Envoy's allow_on_headers_stop_iteration) until the whole
// body has been scanned (core/json_scan.ts explains why the whole body), because the routing
// header must be set before the router sees the request. The body ends at end of stream, or at
// the request trailers.
// The decision itself is core/decide.ts; this file only moves bytes and headers between Envoy and
// it, and keeps this proxy's load counters (shared_load.ts) for the requests it routed.
import { AFFINITY_ROUTED, count, countRejected, MIRROR_PICKED, REWRITTEN, ROUTED, SERVED_ELSEWHERE } from "./counters";
import { decide } from "./core/decide";
import { mirrorDestinations } from "./core/mirror";
import { chooseRoutePool, RequestContext } from "./core/request";
import { badRequest, ErrorReply, internalError, jsonString, noEndpoint, tooLarge, unsupportedEncoding } from "./core/errors";
import { ModelScanner, ScanError, ScanResult } from "./core/json_scan";
import { Random } from "./core/pick";
import { fnv1a64, Route, Snapshot } from "./core/snapshot";
import { isInferencePath } from "./core/routes";
import { CONTENT_ENCODING, CONTENT_LENGTH, DESTINATION, METHOD, MIRROR, MODEL_REWRITE, OBJECTIVE, PATH, POOL, ROUTE_CLUSTER, UPSTREAM_ADDRESS } from "./headers";
import { HeaderPairs } from "./core/header_pairs";
import { borrowBufferBytes, BufferType, getBufferBytes, getHeaderMapPairs, getProperty, log, LogLevel, MapType, removeHeaderMapValue, replaceHeaderMapValue, sendLocalResponse, setBufferBytes, Status } from "./host/api";
import { Channel } from "./load_channel";
import { SharedLoad } from "./shared_load";

export const enum HeadersAction { Continue = 0, StopIteration = 1 }
export const enum BodyAction { Continue = 0, StopIterationAndBuffer = 1 }

const enum Phase { Start, Passthrough, ReadingBody, Routed, Rejected }

/** Settings shared by every stream of one plugin configuration (one ECDS version). */
export class RootConfig {
  /** The stream the live load arrives on (load_channel.ts). */
  channel: Channel;
  constructor(public snapshot: Snapshot, public maxBodyBytes: i64) {
    this.channel = new Channel(snapshot.loadChannel, snapshot.version);
  }
}

export class Stream {
  private phase: Phase = Phase.Start;
  private scanner: ModelScanner = new ModelScanner();
  /** Whether the request declared a content-length (it is corrected after a rewrite). */
  private hasContentLength: bool = false;
  private bodyBytes: i64 = 0;
  /** Address hash of the endpoint this request was sent to, once routed (0: not routed). */
  private endpointHash: u64 = 0;
  /** Prompt bytes this request added to its endpoint's pending count. */
  private pendingBytes: i64 = 0;
  private firstByteSeen: bool = false;
  private responseChunks: u32 = 0;
  /** The request's objective header (core/request.ts), read with the other request headers. */
  private objective: string | null = null;
  /** Whether an endpoint picker routes this request's pool (followServed). */
  private followsPicker: bool = false;

  /** `config` is null when the plugin was never configured: then nothing is routed. */
  constructor(private config: RootConfig | null, private random: Random, private load: SharedLoad) {}

  /**
   * On a pool an endpoint picker routes (the snapshot's `picker` record), the endpoint that served
   * the request is read when its answer starts: Envoy's upstream address. When that is not the
   * endpoint this filter picked (the picker chose another, or a retry moved on), this request's load
   * moves there, so the counts stay true for the picks this filter makes when the picker is down.
   * Read at the first chunk rather than in a response-headers callback, which every request would
   * pay for (a call into the VM costs Envoy microseconds); until then the load sits on this
   * filter's pick. Called only there, before the first byte is noted: the move is published by
   * that chunk's own update (onResponseBody), in one shared-data write.
   */
  private followServed(): void {
    const served = getProperty(UPSTREAM_ADDRESS);
    if (served.status != Status.Ok) return;
    const hash = fnv1a64(served.text()!);
    if (hash == this.endpointHash) return;
    this.load.add(this.endpointHash, -this.pendingBytes, -1, false);
    this.endpointHash = hash;
    this.load.add(hash, this.pendingBytes, 1, false);
    count(SERVED_ELSEWHERE);
  }

  /** A chunk of the answer. The first means the prompt is no longer waiting for prefill; the last
   * (end of stream) means the request no longer loads its endpoint, so it releases its counts here,
   * in one write, rather than when Envoy ends the stream (onDone). Returns whether this chunk should
   * refresh the VM's heartbeat: every 16th (a clock read is a host call, a streamed answer has a
   * chunk per token, and the heartbeat is needed about once a second; the request's pick refreshed
   * it already). */
  onResponseBody(endOfStream: bool): bool {
    const chunk = this.responseChunks++;
    if (chunk == 0 && this.followsPicker && this.endpointHash != 0) this.followServed();
    if (endOfStream) this.release();
    else if (this.endpointHash != 0 && !this.firstByteSeen) {
      this.firstByteSeen = true;
      this.load.add(this.endpointHash, -this.pendingBytes, 0);
    }
    return (chunk & 15) == 15;
  }

  /** The stream is over: it no longer loads its endpoint. Idempotent. */
  onDone(): void { this.release(); }

  /** Removes this request from its endpoint's counts (its prompt too, if no answer came yet). */
  private release(): void {
    const hash = this.endpointHash;
    if (hash == 0) return;
    this.endpointHash = 0;
    this.load.add(hash, this.firstByteSeen ? 0 : -this.pendingBytes, -1);
    this.firstByteSeen = true;
  }

  onRequestHeaders(endOfStream: bool): HeadersAction {
    // One host call for the whole header map; the headers are looked up here (core/header_pairs.ts).
    const got = getHeaderMapPairs(MapType.RequestHeaders);
    const headers = new HeaderPairs(got.status == Status.Ok ? got.data! : new ArrayBuffer(0));
    if (got.status != Status.Ok || !headers.valid) {
      this.reject(internalError("Could not read the request headers (status " + got.status.toString() + ")."));
      return HeadersAction.StopIteration;
    }
    // A client must never choose the upstream (or the model past the model check): drop any
    // destination, pool, mirror endpoint or model override it sent, on every route.
    if (!this.strip(headers, DESTINATION) || !this.strip(headers, POOL) || !this.strip(headers, MIRROR) || !this.strip(headers, MODEL_REWRITE)) return HeadersAction.StopIteration;
    const method = headers.get(METHOD);
    const path = headers.get(PATH);
    if (method === null || method != "POST" || path === null || !isInferencePath(path)) {
      this.phase = Phase.Passthrough;
      return HeadersAction.Continue;
    }
    if (this.config === null) {
      this.reject(noEndpoint("", "the routing configuration has not arrived yet"));
      return HeadersAction.StopIteration;
    }
    const encoding = headers.get(CONTENT_ENCODING);
    if (encoding !== null && encoding.toLowerCase() != "identity") {
      this.reject(unsupportedEncoding(encoding));
      return HeadersAction.StopIteration;
    }
    if (endOfStream) {
      this.reject(badRequest("The request has no body; a JSON body with a \"model\" field is required.", "model"));
      return HeadersAction.StopIteration;
    }
    // Only whether it is there matters: the body itself is measured, never the declared length.
    this.hasContentLength = headers.has(CONTENT_LENGTH);
    this.objective = headers.get(OBJECTIVE);
    this.phase = Phase.ReadingBody;
    return HeadersAction.StopIteration;
  }

  onRequestBody(bodySize: usize, endOfStream: bool): BodyAction {
    if (this.phase != Phase.ReadingBody) return BodyAction.Continue;
    if (<i64>bodySize > this.config!.maxBodyBytes) {
      this.reject(tooLarge(this.config!.maxBodyBytes));
      return BodyAction.StopIterationAndBuffer;
    }
    this.bodyBytes = <i64>bodySize;
    this.scanNewBytes(bodySize);
    if (this.phase == Phase.ReadingBody && (endOfStream || this.scanner.status == ScanResult.Invalid)) this.bodyEnded();
    return this.phase == Phase.Routed ? BodyAction.Continue : BodyAction.StopIterationAndBuffer;
  }

  /** Trailers end the body too (the last body callback then had no end of stream). */
  onRequestTrailers(): HeadersAction {
    if (this.phase == Phase.ReadingBody) this.bodyEnded();
    return this.phase == Phase.Rejected ? HeadersAction.StopIteration : HeadersAction.Continue;
  }

  private bodyEnded(): void {
    const result = this.scanner.finish();
    if (result == ScanResult.Invalid) this.reject(badRequest("Malformed request body: " + this.scanner.error + ".", this.scanner.errorKind >= ScanError.DuplicateModel ? "model" : ""));
    else if (result == ScanResult.Missing) this.reject(badRequest("The request body has no \"model\" field.", "model"));
    else this.route();
  }

  /** Feeds the bytes Envoy buffered since the last call; while we buffer, bodySize is the total. */
  private scanNewBytes(bodySize: usize): void {
    const start = <usize>this.scanner.consumed;
    if (bodySize <= start) return;
    // Read in place: the scanner copies what it keeps (the model, the prompt's first bytes).
    const chunk = borrowBufferBytes(BufferType.RequestBody, start, bodySize - start);
    if (chunk.status == Status.Ok) {
      this.scanner.feed(chunk.ptr, chunk.len);
      chunk.free();
    } else if (chunk.status != Status.NotFound && chunk.status != Status.Empty) {
      this.reject(internalError("Could not read the request body (status " + chunk.status.toString() + ")."));
    }
  }

  private route(): void {
    const config = this.config!;
    const requested = this.scanner.model;
    const route = this.routeOf(config.snapshot);
    const context = this.contextOf(route);
    if (this.phase == Phase.Rejected) return;
    const d = decide(config.snapshot, requested, this.scanner.promptPrefix, this.scanner.promptLength, this.load, this.random, context);
    const reply = d.reply;
    if (reply !== null) { this.reject(reply); return; }
    const rewritten = d.target != requested;
    if (rewritten && !this.rewriteModel(d.target)) {
      this.reject(internalError("Could not rewrite the model field."));
      return;
    }
    if (!this.set(DESTINATION, d.destinations()) || !this.set(POOL, d.pool!.name)) return;
    if (route !== null && route.mirrors.length > 0 && !this.setMirror(config.snapshot, route, d.target)) return;
    // The whole prompt counts as pending prefill until the endpoint answers: the bytes scanned,
    // never what the client declared.
    this.pendingBytes = this.bodyBytes;
    const endpoint = d.pool!.endpoints[d.endpoints[0]];
    this.endpointHash = endpoint.hash;
    this.followsPicker = d.pool!.picker;
    this.load.notePick(d.prefix, endpoint.hash);
    this.load.add(this.endpointHash, this.pendingBytes, 1);
    this.phase = Phase.Routed;
    count(ROUTED);
    if (rewritten) count(REWRITTEN);
    if (d.affinity) count(AFFINITY_ROUTED);
  }

  /** The HTTPRoute rule whose cluster Envoy's route chose, if the snapshot has it. */
  private routeOf(snapshot: Snapshot): Route | null {
    if (snapshot.routes.size == 0) return null;
    const cluster = getProperty(ROUTE_CLUSTER).text();
    return cluster !== null && snapshot.routes.has(cluster) ? snapshot.routes.get(cluster) : null;
  }

  /** The route's pool (drawn by weight) and the objective the request names. */
  private contextOf(route: Route | null): RequestContext {
    const context = new RequestContext();
    if (route !== null) context.pool = chooseRoutePool(route, this.random);
    const objective = this.objective;
    if (objective !== null) context.objective = objective;
    return context;
  }

  /** One endpoint of each mirror pool, for the mirror clusters' override_host. */
  private setMirror(snapshot: Snapshot, route: Route, target: string): bool {
    const mirrors = mirrorDestinations(snapshot, route, target, this.scanner.promptPrefix, this.scanner.promptLength, this.load, this.random);
    if (mirrors.length == 0) return true;
    if (!this.set(MIRROR, mirrors)) return false;
    count(MIRROR_PICKED);
    return true;
  }

  /**
   * Replaces the model value in the buffered body. Envoy can only replace a prefix of the buffer
   * (drain N bytes from the front, then prepend), so the prefix up to the end of the value is
   * rebuilt: the bytes before the value, then the new value.
   */
  private rewriteModel(name: string): bool {
    const valueStart = <usize>this.scanner.valueStart;
    const valueEnd = <usize>this.scanner.valueEnd;
    const quoted = String.UTF8.encode(jsonString(name));
    let headLen: usize = 0;
    let head: ArrayBuffer | null = null;
    if (valueStart > 0) {
      const got = getBufferBytes(BufferType.RequestBody, 0, valueStart);
      if (got.status != Status.Ok) return false;
      head = got.data;
      headLen = <usize>head!.byteLength;
      if (headLen != valueStart) return false;
    }
    const prefix = new ArrayBuffer(<i32>(headLen + quoted.byteLength));
    if (head !== null) memory.copy(changetype<usize>(prefix), changetype<usize>(head), headLen);
    memory.copy(changetype<usize>(prefix) + headLen, changetype<usize>(quoted), quoted.byteLength);
    if (setBufferBytes(BufferType.RequestBody, 0, valueEnd, prefix) != Status.Ok) return false;
    if (this.hasContentLength) {
      const newLength = this.bodyBytes + <i64>prefix.byteLength - <i64>valueEnd;
      if (!this.set(CONTENT_LENGTH, newLength.toString())) return false;
    }
    return true;
  }

  /** Removes a request header the client sent; a request whose routing headers cannot be stripped
   * is rejected. */
  private strip(headers: HeaderPairs, name: ArrayBuffer): bool {
    if (!headers.has(name)) return true;
    const status = removeHeaderMapValue(MapType.RequestHeaders, name);
    if (status == Status.Ok || status == Status.NotFound) return true;
    this.reject(internalError("Could not remove a routing header (status " + status.toString() + ")."));
    return false;
  }

  private set(name: ArrayBuffer, value: string): bool {
    const status = replaceHeaderMapValue(MapType.RequestHeaders, name, value);
    if (status == Status.Ok) return true;
    this.reject(internalError("Could not set a routing header (status " + status.toString() + ")."));
    return false;
  }

  private reject(reply: ErrorReply): void {
    if (this.phase == Phase.Rejected) return;
    this.phase = Phase.Rejected;
    countRejected(reply.status);
    log(LogLevel.Debug, "infergate: " + reply.status.toString() + " " + reply.message);
    const status = sendLocalResponse(reply.status, "infergate_" + reply.code, reply.body(), ["content-type", "application/json"]);
    if (status != Status.Ok) log(LogLevel.Error, "infergate: could not send the local reply: status " + status.toString());
  }
}
