// Thin, allocation-aware wrappers over the raw ABI. Data the host returns is written into memory
// it obtains from our `proxy_on_memory_allocate`; every wrapper copies what it needs and frees it.
import {
  proxy_get_buffer_bytes, proxy_get_current_time_nanoseconds, proxy_get_header_map_value, proxy_get_shared_data, proxy_log,
  proxy_set_shared_data,
  proxy_remove_header_map_value, proxy_replace_header_map_value, proxy_send_local_response, proxy_set_buffer_bytes,
} from "./imports";

export const enum LogLevel { Trace = 0, Debug = 1, Info = 2, Warn = 3, Error = 4, Critical = 5 }
export const enum BufferType { RequestBody = 0, ResponseBody = 1, PluginConfiguration = 7 }
export const enum MapType { RequestHeaders = 0, ResponseHeaders = 2 }
export const enum Status { Ok = 0, NotFound = 1, BadArgument = 2, Empty = 7, CasMismatch = 8 }

// Two out-parameter slots (pointer, length) in static memory: the VM is single-threaded.
const OUT_PTR: usize = memory.data(8);
const OUT_LEN: usize = OUT_PTR + 4;

/** A region of host-returned memory; call `free()` once done reading it. */
export class HostBytes {
  constructor(public ptr: usize, public len: usize) {}
  toStr(): string { return String.UTF8.decodeUnsafe(this.ptr, this.len); }
  free(): void { if (this.ptr != 0) heap.free(this.ptr); this.ptr = 0; this.len = 0; }
}

export function log(level: LogLevel, message: string): void {
  const bytes = String.UTF8.encode(message);
  proxy_log(level, changetype<usize>(bytes), bytes.byteLength);
}

export function getBufferBytes(type: BufferType, start: usize, maxSize: usize): HostBytes | null {
  store<u32>(OUT_PTR, 0);
  store<u32>(OUT_LEN, 0);
  const status = proxy_get_buffer_bytes(type, start, maxSize, OUT_PTR, OUT_LEN);
  if (status != Status.Ok) return null;
  return new HostBytes(load<u32>(OUT_PTR), load<u32>(OUT_LEN));
}

export function getBufferString(type: BufferType, size: usize): string {
  if (size == 0) return "";
  const bytes = getBufferBytes(type, 0, size);
  if (bytes === null) return "";
  const text = bytes.toStr();
  bytes.free();
  return text;
}

/** Envoy semantics: start 0 drains `length` bytes from the front, then prepends `data`. */
export function replaceBufferPrefix(type: BufferType, length: usize, data: ArrayBuffer): bool {
  return proxy_set_buffer_bytes(type, 0, length, changetype<usize>(data), data.byteLength) == Status.Ok;
}

export function getHeader(map: MapType, name: ArrayBuffer): string | null {
  store<u32>(OUT_PTR, 0);
  store<u32>(OUT_LEN, 0);
  const status = proxy_get_header_map_value(map, changetype<usize>(name), name.byteLength, OUT_PTR, OUT_LEN);
  if (status != Status.Ok) return null;
  const value = new HostBytes(load<u32>(OUT_PTR), load<u32>(OUT_LEN));
  const text = value.toStr();
  value.free();
  return text;
}

export function replaceHeader(map: MapType, name: ArrayBuffer, value: string): void {
  const v = String.UTF8.encode(value);
  proxy_replace_header_map_value(map, changetype<usize>(name), name.byteLength, changetype<usize>(v), v.byteLength);
}

export function removeHeader(map: MapType, name: ArrayBuffer): void {
  proxy_remove_header_map_value(map, changetype<usize>(name), name.byteLength);
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
export function sendLocalResponse(status: u32, details: string, body: string, headerPairs: string[]): void {
  const d = String.UTF8.encode(details);
  const b = String.UTF8.encode(body);
  const h = serializeHeaders(headerPairs);
  proxy_send_local_response(status, changetype<usize>(d), d.byteLength, changetype<usize>(b), b.byteLength,
    changetype<usize>(h), h.byteLength, -1);
}

const TIME_OUT: usize = memory.data(8);
export function nowNanos(): u64 {
  proxy_get_current_time_nanoseconds(TIME_OUT);
  return load<u64>(TIME_OUT);
}

const OUT_CAS: usize = memory.data(8);

/**
 * Adds `deltas` to a record of i64 counters in Envoy's shared data (one store per VM id, shared
 * by every worker thread), with compare-and-swap retries. Values never go below zero, so a lost
 * update can only make a counter forget load, not invent it. Returns the counters after the update.
 */
export function addSharedCounters(key: ArrayBuffer, deltas: StaticArray<i64>): StaticArray<i64> {
  const count = deltas.length;
  const values = new StaticArray<i64>(count);
  for (let attempt = 0; attempt < 16; attempt++) {
    store<u32>(OUT_PTR, 0);
    store<u32>(OUT_LEN, 0);
    store<u32>(OUT_CAS, 0);
    const status = proxy_get_shared_data(changetype<usize>(key), key.byteLength, OUT_PTR, OUT_LEN, OUT_CAS);
    const cas = status == Status.Ok ? load<u32>(OUT_CAS) : 0;
    readCounters(status, values);
    for (let i = 0; i < count; i++) {
      const v = values[i] + deltas[i];
      values[i] = v < 0 ? 0 : v;
    }
    const written = proxy_set_shared_data(changetype<usize>(key), key.byteLength, changetype<usize>(values), <usize>count * 8, cas);
    if (written != Status.CasMismatch) break;
  }
  return values;
}

/** Reads a record of i64 counters from shared data (zeros when absent). */
export function readSharedCounters(key: ArrayBuffer, values: StaticArray<i64>): void {
  store<u32>(OUT_PTR, 0);
  store<u32>(OUT_LEN, 0);
  const status = proxy_get_shared_data(changetype<usize>(key), key.byteLength, OUT_PTR, OUT_LEN, OUT_CAS);
  readCounters(status, values);
}

function readCounters(status: i32, values: StaticArray<i64>): void {
  for (let i = 0; i < values.length; i++) values[i] = 0;
  if (status != Status.Ok) return;
  const ptr: usize = load<u32>(OUT_PTR);
  const len: usize = load<u32>(OUT_LEN);
  const n = min(<i32>(len / 8), values.length);
  for (let i = 0; i < n; i++) values[i] = load<i64>(ptr + <usize>i * 8);
  if (ptr != 0) heap.free(ptr);
}
