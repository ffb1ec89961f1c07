// A stand-in for the infergate filter that does only part of its work, so bench/filter-ab.ts can
// measure what Envoy charges for each part (the crossings into the VM, holding the request until
// its body ends, routing by the filter's headers, handing the module the headers and the body)
// apart from what the filter itself does. The plugin configuration picks the part:
//
//   callbacks                    every stream callback is exported and returns at once
//   route <host:port> <pool>     holds the headers until the body ends, then sets the destination
//                                and pool headers the way the filter does (Envoy routes by them)
//   read <host:port> <pool>      route, and reads the request headers and each body chunk
//
// Built by bench/filter-ab.ts (`--b probe:read`), with AssemblyScript's stub runtime: nothing is
// ever freed (each repetition's Envoy serves a few hundred requests per VM, which fit).

// The filter's own header names (a pure module: no host imports of its own).
import { DESTINATION_HEADER, POOL_HEADER } from "../src/core/routes";

@external("env", "proxy_get_buffer_bytes")
declare function proxy_get_buffer_bytes(bufferType: i32, start: usize, maxSize: usize, outPtrPtr: usize, outLenPtr: usize): i32;
@external("env", "proxy_get_header_map_pairs")
declare function proxy_get_header_map_pairs(mapType: i32, outPtrPtr: usize, outLenPtr: usize): i32;
@external("env", "proxy_replace_header_map_value")
declare function proxy_replace_header_map_value(mapType: i32, keyPtr: usize, keyLen: usize, valuePtr: usize, valueLen: usize): i32;

const REQUEST_HEADERS = 0;
const REQUEST_BODY = 0;
const PLUGIN_CONFIGURATION = 7;
const DESTINATION = String.UTF8.encode(DESTINATION_HEADER);
const POOL = String.UTF8.encode(POOL_HEADER);
const out = memory.data(16);

let route = false;
let read = false;
let destination = new ArrayBuffer(0);
let pool = new ArrayBuffer(0);

function setHeader(name: ArrayBuffer, value: ArrayBuffer): void {
  proxy_replace_header_map_value(REQUEST_HEADERS, changetype<usize>(name), name.byteLength, changetype<usize>(value), value.byteLength);
}

export function proxy_abi_version_0_2_1(): void {}
export function proxy_on_memory_allocate(size: usize): usize { return heap.alloc(size > 0 ? size : 1); }
export function proxy_on_vm_start(rootId: u32, vmConfigSize: usize): bool { return true; }

export function proxy_on_configure(rootId: u32, configSize: usize): bool {
  if (proxy_get_buffer_bytes(PLUGIN_CONFIGURATION, 0, configSize, out, out + 8) != 0) return false;
  const words = String.UTF8.decodeUnsafe(load<usize>(out), load<usize>(out + 8)).split(" ");
  const mode = words[0];
  if (mode == "callbacks") return true;
  if ((mode != "route" && mode != "read") || words.length != 3) return false;
  route = true;
  read = mode == "read";
  destination = String.UTF8.encode(words[1]);
  pool = String.UTF8.encode(words[2]);
  return true;
}

export function proxy_on_context_create(contextId: u32, parentId: u32): void {}

export function proxy_on_request_headers(contextId: u32, headerCount: u32, endOfStream: bool): i32 {
  if (!route) return 0;
  if (read) proxy_get_header_map_pairs(REQUEST_HEADERS, out, out + 8);
  return endOfStream ? 0 : 1; // StopIteration until the body ends
}

export function proxy_on_request_body(contextId: u32, bodySize: usize, endOfStream: bool): i32 {
  if (!route) return 0;
  if (!endOfStream) {
    if (read) proxy_get_buffer_bytes(REQUEST_BODY, 0, bodySize, out, out + 8);
    return 1; // StopIterationAndBuffer
  }
  setHeader(POOL, pool);
  setHeader(DESTINATION, destination);
  return 0;
}

export function proxy_on_response_body(contextId: u32, bodySize: usize, endOfStream: bool): i32 { return 0; }
export function proxy_on_delete(contextId: u32): void {}
