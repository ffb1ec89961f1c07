// Per-request state machine, in the manner of Envoy's own filters:
//
//   Start --(not an inference route)--------------------------------> Passthrough
//   Start --(inference route, body follows)--> ReadingBody --(model)--> Routed
//                                                   \--(bad/unknown)--> Rejected (local reply)
//
// Headers are held (StopIteration, with Envoy's allow_on_headers_stop_iteration) until the body
// has yielded `model`, because the routing header must be set before the router sees the request.
import { addSharedCounters, BufferType, MapType, getBufferBytes, getHeader, log, LogLevel, readSharedCounters, removeHeader, replaceBufferPrefix, replaceHeader, sendLocalResponse } from "./host/api";
import { count } from "./host/metrics";
import { badRequest, ErrorReply, jsonString, modelNotFound, noEndpoint, shed, tooLarge, unsupportedEncoding } from "./core/errors";
import { ModelScanner, ScanResult } from "./core/json_scan";
import { affinityEndpoint, chooseTarget, endpointCosts, isSaturated, LocalLoad, pickEndpoint, prefixHash, Random, withFallbacks } from "./core/pick";
import { Criticality, Pool, Snapshot } from "./core/snapshot";

export const enum HeadersAction { Continue = 0, StopIteration = 1 }
export const enum BodyAction { Continue = 0, StopIterationAndBuffer = 1 }

const enum Phase { Start, Passthrough, ReadingBody, Routed, Rejected }

/** Shared-data key of this proxy's load counters for an endpoint: [pending prompt bytes, in flight]. */
function loadKey(address: string): ArrayBuffer {
  return String.UTF8.encode("infergate/load/" + address);
}

/** Reads every worker's counters for the pool's endpoints (Envoy shares data across threads). */
function localLoads(pool: Pool): Array<LocalLoad> {
  const out = new Array<LocalLoad>(pool.endpoints.length);
  const values = new StaticArray<i64>(2);
  for (let i = 0; i < pool.endpoints.length; i++) {
    readSharedCounters(loadKey(pool.endpoints[i].address), values);
    const l = new LocalLoad();
    l.pendingPromptBytes = values[0];
    l.inflight = values[1];
    out[i] = l;
  }
  return out;
}

// Header names, encoded once.
const DESTINATION = String.UTF8.encode("x-gateway-destination-endpoint");
/** Names the pool whose cluster Envoy's route sends the request to. */
const POOL_HEADER = String.UTF8.encode("x-infergate-pool");
/** Endpoints after the chosen one in the destination list, for Envoy to retry on. */
const FALLBACKS: i32 = 2;
const METHOD = String.UTF8.encode(":method");
const PATH = String.UTF8.encode(":path");
const CONTENT_LENGTH = String.UTF8.encode("content-length");
const CONTENT_ENCODING = String.UTF8.encode("content-encoding");

/** OpenAI-compatible routes whose JSON body carries a top-level `model`. Requests elsewhere pass
 * through untouched (minus any client-sent destination header) to the pool's plain route. */
const INFERENCE_PATHS: string[] = [
  "/v1/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/v1/rerank", "/v1/score",
];

export function isInferencePath(path: string): bool {
  const q = path.indexOf("?");
  const bare = q >= 0 ? path.substring(0, q) : path;
  return INFERENCE_PATHS.includes(bare);
}

/** Settings shared by every stream of one plugin configuration (one ECDS version). */
export class RootConfig {
  constructor(public snapshot: Snapshot, public maxBodyBytes: i64) {}
}

export class Stream {
  private phase: Phase = Phase.Start;
  private scanner: ModelScanner = new ModelScanner();
  private contentLength: i64 = -1;
  private bodyBytes: i64 = 0;
  /** Counters key of the endpoint this request was sent to, once routed. */
  private loadKey: ArrayBuffer | null = null;
  private firstByteSeen: bool = false;

  constructor(private config: RootConfig, private random: Random) {}

  /** The upstream answered: the prompt is no longer waiting for prefill. */
  onResponseBody(): void {
    const key = this.loadKey;
    if (key === null || this.firstByteSeen) return;
    this.firstByteSeen = true;
    addSharedCounters(key, [-this.bodyBytes, 0]);
  }

  /** The stream is over: it no longer loads its endpoint. */
  onDone(): void {
    const key = this.loadKey;
    if (key === null) return;
    this.loadKey = null;
    addSharedCounters(key, [this.firstByteSeen ? 0 : -this.bodyBytes, -1]);
  }

  onRequestHeaders(endOfStream: bool): HeadersAction {
    // A client must never choose the upstream: drop any destination it sent, on every route.
    removeHeader(MapType.RequestHeaders, DESTINATION);
    removeHeader(MapType.RequestHeaders, POOL_HEADER);
    const method = getHeader(MapType.RequestHeaders, METHOD);
    const path = getHeader(MapType.RequestHeaders, PATH);
    if (method === null || method != "POST" || path === null || !isInferencePath(path)) {
      this.phase = Phase.Passthrough;
      return HeadersAction.Continue;
    }
    const encoding = getHeader(MapType.RequestHeaders, CONTENT_ENCODING);
    if (encoding !== null && encoding.toLowerCase() != "identity") {
      this.reject(unsupportedEncoding(encoding));
      return HeadersAction.StopIteration;
    }
    if (endOfStream) {
      this.reject(badRequest("The request has no body; a JSON body with a \"model\" field is required.", "model"));
      return HeadersAction.StopIteration;
    }
    const length = getHeader(MapType.RequestHeaders, CONTENT_LENGTH);
    if (length !== null) this.contentLength = I64.parseInt(length);
    this.phase = Phase.ReadingBody;
    return HeadersAction.StopIteration;
  }

  onRequestBody(bodySize: usize, endOfStream: bool): BodyAction {
    if (this.phase != Phase.ReadingBody) return BodyAction.Continue;
    this.bodyBytes = <i64>bodySize;
    const result = this.scanNewBytes(bodySize, endOfStream);
    if (result == ScanResult.NeedMore) {
      if (<i64>bodySize > this.config.maxBodyBytes) {
        this.reject(tooLarge(this.config.maxBodyBytes));
        return BodyAction.StopIterationAndBuffer;
      }
      return BodyAction.StopIterationAndBuffer;
    }
    if (result == ScanResult.Invalid) {
      this.reject(badRequest("Malformed JSON body: " + this.scanner.error + ".", ""));
    } else if (result == ScanResult.Missing) {
      this.reject(badRequest("The request body has no \"model\" field.", "model"));
    } else {
      this.route();
    }
    return this.phase == Phase.Routed ? BodyAction.Continue : BodyAction.StopIterationAndBuffer;
  }

  /** Feeds the bytes Envoy buffered since the last call; while we buffer, bodySize is the total. */
  private scanNewBytes(bodySize: usize, endOfStream: bool): ScanResult {
    const start = <usize>this.scanner.consumed;
    if (bodySize > start) {
      const chunk = getBufferBytes(BufferType.RequestBody, start, bodySize - start);
      if (chunk !== null) {
        this.scanner.feed(chunk.ptr, chunk.len);
        chunk.free();
      }
    }
    return endOfStream ? this.scanner.finish() : this.scanner.status;
  }

  private route(): void {
    const requested = this.scanner.model;
    const snapshot = this.config.snapshot;
    if (!snapshot.models.has(requested)) { this.reject(modelNotFound(requested)); return; }
    const model = snapshot.models.get(requested);
    const target = chooseTarget(model, this.random);
    if (target === null) { this.reject(noEndpoint(requested, "every target model has weight 0")); return; }
    const pool = model.pool;
    if (model.criticality == Criticality.Sheddable && isSaturated(pool)) { this.reject(shed(requested, pool.name)); return; }
    const tuning = snapshot.tuning;
    const affinity = prefixHash(this.scanner.promptPrefix, this.scanner.promptLength, tuning.affinityBlocks);
    const costs = endpointCosts(pool, localLoads(pool), tuning, target.name);
    const index = pickEndpoint(pool, costs, affinity, tuning, this.random);
    if (affinity != 0 && index >= 0 && index == affinityEndpoint(pool, affinity)) count("affinity_routed");
    if (index < 0) { this.reject(noEndpoint(requested, "pool " + pool.name + " has no ready endpoint")); return; }
    const endpoint = pool.endpoints[index];
    if (target.name != requested && !this.rewriteModel(target.name)) {
      this.reject(new ErrorReply(500, "Could not rewrite the model field.", "internal_error", "", "rewrite_failed"));
      return;
    }
    const order = withFallbacks(costs, index, FALLBACKS);
    let destinations = endpoint.address;
    for (let i = 1; i < order.length; i++) destinations += "," + pool.endpoints[order[i]].address;
    replaceHeader(MapType.RequestHeaders, DESTINATION, destinations);
    replaceHeader(MapType.RequestHeaders, POOL_HEADER, pool.name);
    // The whole prompt counts as pending prefill until the endpoint answers.
    if (this.contentLength > this.bodyBytes) this.bodyBytes = this.contentLength;
    this.loadKey = loadKey(endpoint.address);
    addSharedCounters(this.loadKey!, [this.bodyBytes, 1]);
    this.phase = Phase.Routed;
    count("routed");
    count("endpoint." + endpoint.address + ".routed");
    if (target.name != requested) count("rewritten");
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
    const head = valueStart > 0 ? getBufferBytes(BufferType.RequestBody, 0, valueStart) : null;
    const headLen: usize = head === null ? 0 : head.len;
    if (headLen != valueStart) { if (head !== null) head.free(); return false; }
    const prefix = new ArrayBuffer(<i32>(headLen + quoted.byteLength));
    if (head !== null) { memory.copy(changetype<usize>(prefix), head.ptr, headLen); head.free(); }
    memory.copy(changetype<usize>(prefix) + headLen, changetype<usize>(quoted), quoted.byteLength);
    if (!replaceBufferPrefix(BufferType.RequestBody, valueEnd, prefix)) return false;
    if (this.contentLength >= 0) {
      const newLength = this.contentLength + <i64>prefix.byteLength - <i64>valueEnd;
      replaceHeader(MapType.RequestHeaders, CONTENT_LENGTH, newLength.toString());
    }
    return true;
  }

  private reject(reply: ErrorReply): void {
    this.phase = Phase.Rejected;
    count("rejected." + reply.status.toString());
    log(LogLevel.Debug, "infergate: " + reply.status.toString() + " " + reply.message);
    sendLocalResponse(reply.status, "infergate_" + reply.code, reply.body(), ["content-type", "application/json"]);
  }
}
