// Per-request state machine, in the manner of Envoy's own filters:
//
//   Start --(not an inference route)--------------------------------> Passthrough
//   Start --(inference route, body follows)--> ReadingBody --(model)--> Routed
//                                                   \--(bad/unknown)--> Rejected (local reply)
//
// Headers are held (StopIteration, with Envoy's allow_on_headers_stop_iteration) until the body
// has yielded `model`, because the routing header must be set before the router sees the request.
import { BufferType, MapType, getBufferBytes, getHeader, log, LogLevel, removeHeader, replaceBufferPrefix, replaceHeader, sendLocalResponse } from "./host/api";
import { badRequest, ErrorReply, jsonString, modelNotFound, noEndpoint, tooLarge, unsupportedEncoding } from "./core/errors";
import { ModelScanner, ScanResult } from "./core/json_scan";
import { chooseTarget, pickEndpoint, Random } from "./core/pick";
import { Snapshot } from "./core/snapshot";

export const enum HeadersAction { Continue = 0, StopIteration = 1 }
export const enum BodyAction { Continue = 0, StopIterationAndBuffer = 1 }

const enum Phase { Start, Passthrough, ReadingBody, Routed, Rejected }

// Header names, encoded once.
const DESTINATION = String.UTF8.encode("x-gateway-destination-endpoint");
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

  constructor(private config: RootConfig, private random: Random) {}

  onRequestHeaders(endOfStream: bool): HeadersAction {
    // A client must never choose the upstream: drop any destination it sent, on every route.
    removeHeader(MapType.RequestHeaders, DESTINATION);
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
    const endpoint = pickEndpoint(model.pool, this.random);
    if (endpoint === null) { this.reject(noEndpoint(requested, "pool " + model.pool.name + " has no ready endpoint")); return; }
    if (target.name != requested && !this.rewriteModel(target.name)) {
      this.reject(new ErrorReply(500, "Could not rewrite the model field.", "internal_error", "", "rewrite_failed"));
      return;
    }
    replaceHeader(MapType.RequestHeaders, DESTINATION, endpoint.address);
    this.phase = Phase.Routed;
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
    log(LogLevel.Debug, "infergate: " + reply.status.toString() + " " + reply.message);
    sendLocalResponse(reply.status, "infergate_" + reply.code, reply.body(), ["content-type", "application/json"]);
  }
}
