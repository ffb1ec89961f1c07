// The proxy-wasm ABI 0.2.1 host calls this filter makes, as thin typed wrappers in the manner of
// proxy-wasm-rust-sdk's hostcalls.rs: each one passes its arguments through, copies out what the
// host returned (and frees the host's allocation), and returns the host's Status; one, for request
// bodies, hands the host's allocation over uncopied for the caller to free (Borrowed). No
// application logic lives here: callers decide what every status means for them.
import {
  proxy_define_metric, proxy_get_buffer_bytes, proxy_get_current_time_nanoseconds, proxy_get_header_map_pairs, proxy_get_header_map_value,
  proxy_get_property, proxy_get_shared_data, proxy_increment_metric, proxy_log, proxy_remove_header_map_value, proxy_replace_header_map_value,
  proxy_grpc_cancel, proxy_grpc_send, proxy_grpc_stream, proxy_send_local_response, proxy_set_buffer_bytes, proxy_set_shared_data,
} from "./imports";

/** proxy-wasm ABI WasmResult: every value a host call can return. */
export const enum Status {
  Ok = 0, NotFound = 1, BadArgument = 2, SerializationFailure = 3, ParseFailure = 4, BadExpression = 5,
  InvalidMemoryAccess = 6, Empty = 7, CasMismatch = 8, ResultMismatch = 9, InternalFailure = 10,
  BrokenConnection = 11, Unimplemented = 12,
}

export const enum LogLevel { Trace = 0, Debug = 1, Info = 2, Warn = 3, Error = 4, Critical = 5 }
export const enum BufferType { RequestBody = 0, ResponseBody = 1, GrpcReceive = 5, PluginConfiguration = 7 }
export const enum MapType { RequestHeaders = 0, ResponseHeaders = 2 }
export const enum MetricType { Counter = 0, Gauge = 1, Histogram = 2 }

// Out-parameter slots (pointer, length, cas, id, time) in static memory: the VM is single-threaded.
const OUT_PTR: usize = memory.data(8);
const OUT_LEN: usize = OUT_PTR + 4;
const OUT_CAS: usize = memory.data(4);
const OUT_ID: usize = memory.data(4);
const OUT_TIME: usize = memory.data(8);
const OUT_TOKEN: usize = memory.data(4);
/** A serialized header map with no pairs (a u32 count of 0): a stream's initial metadata. */
const NO_PAIRS: usize = memory.data(4);

/** A copy of bytes the host returned (the host's allocation is already freed). */
export class Bytes {
  constructor(public status: Status, public data: ArrayBuffer | null) {}
  get ok(): bool { return this.status == Status.Ok; }
  text(): string | null {
    const d = this.data;
    return d === null ? null : String.UTF8.decode(d);
  }
}

/** Shared data: the value and its compare-and-swap token. */
export class SharedValue extends Bytes {
  constructor(status: Status, data: ArrayBuffer | null, public cas: u32) { super(status, data); }
}

function resetOut(): void {
  store<u32>(OUT_PTR, 0);
  store<u32>(OUT_LEN, 0);
}

/** Copies the host-allocated region named by the out slots into a new buffer and frees it. */
function takeOut(): ArrayBuffer {
  const ptr = <usize>load<u32>(OUT_PTR);
  const len = <i32>load<u32>(OUT_LEN);
  const out = new ArrayBuffer(len);
  if (ptr != 0) {
    memory.copy(changetype<usize>(out), ptr, <usize>len);
    heap.free(ptr);
  }
  return out;
}

export function log(level: LogLevel, message: string): Status {
  const bytes = String.UTF8.encode(message);
  return proxy_log(level, changetype<usize>(bytes), bytes.byteLength);
}

export function getBufferBytes(type: BufferType, start: usize, maxSize: usize): Bytes {
  resetOut();
  const status = <Status>proxy_get_buffer_bytes(type, start, maxSize, OUT_PTR, OUT_LEN);
  return new Bytes(status, status == Status.Ok ? takeOut() : null);
}

/** Bytes the host wrote into this module's memory, read where they lie (no copy). The caller
 * frees them with `free()` as soon as it is done; nothing may keep a pointer into them after. */
export class Borrowed {
  constructor(public status: Status, public ptr: usize, public len: usize) {}
  free(): void {
    if (this.ptr != 0) heap.free(this.ptr);
    this.ptr = 0;
    this.len = 0;
  }
}

/** getBufferBytes without the copy: for a large body, which is read once and dropped. */
export function borrowBufferBytes(type: BufferType, start: usize, maxSize: usize): Borrowed {
  resetOut();
  const status = <Status>proxy_get_buffer_bytes(type, start, maxSize, OUT_PTR, OUT_LEN);
  return status == Status.Ok ? new Borrowed(status, <usize>load<u32>(OUT_PTR), <usize>load<u32>(OUT_LEN)) : new Borrowed(status, 0, 0);
}

/** Envoy semantics for start 0: drains `length` bytes from the front, then prepends `data`. */
export function setBufferBytes(type: BufferType, start: usize, length: usize, data: ArrayBuffer): Status {
  return <Status>proxy_set_buffer_bytes(type, start, length, changetype<usize>(data), data.byteLength);
}

export function getHeaderMapValue(map: MapType, name: ArrayBuffer): Bytes {
  resetOut();
  const status = <Status>proxy_get_header_map_value(map, changetype<usize>(name), name.byteLength, OUT_PTR, OUT_LEN);
  return new Bytes(status, status == Status.Ok ? takeOut() : null);
}

/** The whole header map, serialized (core/header_pairs.ts reads it). */
export function getHeaderMapPairs(map: MapType): Bytes {
  resetOut();
  const status = <Status>proxy_get_header_map_pairs(map, OUT_PTR, OUT_LEN);
  return new Bytes(status, status == Status.Ok ? takeOut() : null);
}

export function replaceHeaderMapValue(map: MapType, name: ArrayBuffer, value: string): Status {
  const v = String.UTF8.encode(value);
  return <Status>proxy_replace_header_map_value(map, changetype<usize>(name), name.byteLength, changetype<usize>(v), v.byteLength);
}

export function removeHeaderMapValue(map: MapType, name: ArrayBuffer): Status {
  return <Status>proxy_remove_header_map_value(map, changetype<usize>(name), name.byteLength);
}

/** Serializes header pairs as the ABI expects: count, (key len, value len)*, then NUL-terminated bytes. */
function serializeHeaders(pairs: string[]): ArrayBuffer {
  const encoded = new Array<ArrayBuffer>(pairs.length);
  let size = 4 + (pairs.length / 2) * 8;
  for (let i = 0; i < pairs.length; i++) {
    encoded[i] = String.UTF8.encode(pairs[i]);
    size += encoded[i].byteLength + 1;
  }
  const out = new ArrayBuffer(size);
  const base = changetype<usize>(out);
  store<u32>(base, pairs.length / 2);
  let lenAt = base + 4;
  let dataAt = base + 4 + (pairs.length / 2) * 8;
  for (let i = 0; i < encoded.length; i++) {
    const part = encoded[i];
    store<u32>(lenAt, part.byteLength);
    lenAt += 4;
    memory.copy(dataAt, changetype<usize>(part), part.byteLength);
    dataAt += part.byteLength;
    store<u8>(dataAt, 0);
    dataAt += 1;
  }
  return out;
}

/** Answers the request from the proxy; `headerPairs` alternates names and values. */
export function sendLocalResponse(status: u32, details: string, body: string, headerPairs: string[]): Status {
  const d = String.UTF8.encode(details);
  const b = String.UTF8.encode(body);
  const h = serializeHeaders(headerPairs);
  return <Status>proxy_send_local_response(status, changetype<usize>(d), d.byteLength, changetype<usize>(b), b.byteLength,
    changetype<usize>(h), h.byteLength, -1);
}

/** The host's wall clock; 0 if the host refuses (it never does in Envoy). */
export function currentTimeNanos(): u64 {
  store<u64>(OUT_TIME, 0);
  return proxy_get_current_time_nanoseconds(OUT_TIME) == Status.Ok ? load<u64>(OUT_TIME) : 0;
}

export function getSharedData(key: ArrayBuffer): SharedValue {
  resetOut();
  store<u32>(OUT_CAS, 0);
  const status = <Status>proxy_get_shared_data(changetype<usize>(key), key.byteLength, OUT_PTR, OUT_LEN, OUT_CAS);
  if (status != Status.Ok) return new SharedValue(status, null, 0);
  const cas = load<u32>(OUT_CAS);
  return new SharedValue(status, takeOut(), cas);
}

/** `cas` 0 writes unconditionally; otherwise the write fails with CasMismatch if the value changed. */
export function setSharedData(key: ArrayBuffer, value: ArrayBuffer, cas: u32): Status {
  return <Status>proxy_set_shared_data(changetype<usize>(key), key.byteLength, changetype<usize>(value), value.byteLength, cas);
}

/** Defines a metric; the id is valid only when the status is Ok. */
export class MetricId {
  constructor(public status: Status, public id: u32) {}
}

export function defineMetric(type: MetricType, name: string): MetricId {
  const bytes = String.UTF8.encode(name);
  store<u32>(OUT_ID, 0);
  const status = <Status>proxy_define_metric(type, changetype<usize>(bytes), bytes.byteLength, OUT_ID);
  return new MetricId(status, load<u32>(OUT_ID));
}

export function incrementMetric(id: u32, offset: i64): Status {
  return <Status>proxy_increment_metric(id, offset);
}

/** A property of the stream or the host; `path` is its segments joined by NUL bytes
 * (`xds\0cluster_name`). */
export function getProperty(path: ArrayBuffer): Bytes {
  resetOut();
  const status = <Status>proxy_get_property(changetype<usize>(path), path.byteLength, OUT_PTR, OUT_LEN);
  if (status != Status.Ok) return new Bytes(status, null);
  return new Bytes(status, takeOut());
}

/** A gRPC stream the host opened; the token is valid only when the status is Ok. */
export class GrpcStreamToken {
  constructor(public status: Status, public token: u32) {}
}

/** Opens a gRPC stream owned by the current root context (the host binds it there even when called
 * from a request's callback). `service` is a serialized envoy.config.core.v3.GrpcService. */
export function grpcStream(service: ArrayBuffer, serviceName: string, method: string): GrpcStreamToken {
  const s = String.UTF8.encode(serviceName);
  const m = String.UTF8.encode(method);
  store<u32>(OUT_TOKEN, 0);
  const status = <Status>proxy_grpc_stream(changetype<usize>(service), service.byteLength, changetype<usize>(s), s.byteLength,
    changetype<usize>(m), m.byteLength, NO_PAIRS, 4, OUT_TOKEN);
  return new GrpcStreamToken(status, load<u32>(OUT_TOKEN));
}

export function grpcSend(token: u32, message: ArrayBuffer, endStream: bool): Status {
  return <Status>proxy_grpc_send(token, changetype<usize>(message), message.byteLength, endStream ? 1 : 0);
}

/** Cancels a stream this module opened: no callback follows. */
export function grpcCancel(token: u32): Status {
  return <Status>proxy_grpc_cancel(token);
}
