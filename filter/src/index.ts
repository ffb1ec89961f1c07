// proxy-wasm ABI 0.2.1 entry points. Envoy creates one VM per worker thread; each VM holds one
// root context per plugin configuration (a new one for every ECDS push) and one stream context
// per request. This file only dispatches; the logic lives in stream.ts and core/.
import { BufferType, currentTimeNanos, getBufferBytes, log, LogLevel, Status } from "./host/api";
import { Random } from "./core/pick";
import { parseSnapshot } from "./core/snapshot";
import { defineCounters } from "./counters";
import { SharedLoad } from "./shared_load";
import { collectIfDue } from "./collect";
import { channelClosed, openChannel, receiveLoad, reopenIfDue, startFromLatest } from "./load_channel";
import { RootConfig, Stream } from "./stream";
// Included so asconfig.json can point `abort` at it (see host/abort.ts).
import "./host/abort";

const DEFAULT_MAX_BODY_BYTES: i64 = 8 * 1024 * 1024;

const roots = new Map<u32, RootConfig>();
const streams = new Map<u32, Stream>();
const sharedLoad = new SharedLoad();
let random: Random | null = null;

function randomSource(): Random {
  // Seeded lazily: the clock is a host call, which is not available while the module starts.
  if (random === null) random = new Random(currentTimeNanos() ^ 0x5851f42d4c957f2d);
  return random!;
}

export function proxy_abi_version_0_2_1(): void {}

export function proxy_on_memory_allocate(size: usize): usize {
  return heap.alloc(size > 0 ? size : 1);
}

export function proxy_on_vm_start(rootId: u32, vmConfigSize: usize): bool {
  defineCounters();
  return true;
}

/** Parses the pushed snapshot. Returning false makes Envoy reject this configuration (an ECDS
 * NACK), so proxies keep routing with the previous good one. */
export function proxy_on_configure(rootId: u32, configSize: usize): bool {
  const got = configSize > 0 ? getBufferBytes(BufferType.PluginConfiguration, 0, configSize) : null;
  if (got !== null && got.status != Status.Ok) {
    log(LogLevel.Error, "infergate: cannot read the plugin configuration: status " + got.status.toString());
    return false;
  }
  const text = got === null ? "" : got.text()!;
  const parsed = parseSnapshot(text);
  const snapshot = parsed.snapshot;
  if (snapshot === null) {
    log(LogLevel.Error, "infergate: rejected configuration: " + parsed.error);
    return false;
  }
  const root = new RootConfig(snapshot, DEFAULT_MAX_BODY_BYTES);
  roots.set(rootId, root);
  startFromLatest(snapshot);
  openChannel(root.channel);
  // No tick period here: Envoy keeps a timer for every root context that ever set one, and a root
  // context is created on every push, so ticks would grow Envoy's memory with every snapshot.
  // Traffic heartbeats instead (shared_load.ts).
  sharedLoad.maybeHeartbeat(false);
  log(LogLevel.Info, "infergate: configured snapshot version " + snapshot.version + " (" +
    snapshot.models.size.toString() + " models, " + snapshot.pools.size.toString() + " pools)");
  return true;
}

export function proxy_on_context_create(contextId: u32, parentId: u32): void {
  if (parentId == 0) return; // a root context: configured in proxy_on_configure
  // A root that was never configured still gets a stream: it strips the client's routing headers
  // and answers inference requests with 503 instead of letting them through unrouted.
  const root = roots.has(parentId) ? roots.get(parentId) : null;
  if (root !== null && !root.channel.open) reopenIfDue(root.channel);
  streams.set(contextId, new Stream(root, randomSource(), sharedLoad));
  collectIfDue();
}

export function proxy_on_request_headers(contextId: u32, headerCount: u32, endOfStream: bool): i32 {
  const action = streams.has(contextId) ? streams.get(contextId).onRequestHeaders(endOfStream) : 0;
  collectIfDue();
  return action;
}

export function proxy_on_request_body(contextId: u32, bodySize: usize, endOfStream: bool): i32 {
  const action = streams.has(contextId) ? streams.get(contextId).onRequestBody(bodySize, endOfStream) : 0;
  collectIfDue();
  return action;
}

export function proxy_on_request_trailers(contextId: u32, trailerCount: u32): i32 {
  const action = streams.has(contextId) ? streams.get(contextId).onRequestTrailers() : 0;
  collectIfDue();
  return action;
}

export function proxy_on_response_body(contextId: u32, bodySize: usize, endOfStream: bool): i32 {
  // A streamed answer keeps this VM's load record fresh while no new request arrives.
  if (streams.has(contextId)) {
    if (streams.get(contextId).onResponseBody(endOfStream)) sharedLoad.maybeHeartbeat();
  } else sharedLoad.maybeHeartbeat();
  collectIfDue();
  return 0;
}

// No proxy_on_response_headers, proxy_on_done or proxy_on_log: every call into the VM costs Envoy
// a few microseconds, and Envoy skips a callback the module does not export. The served endpoint
// is read with the answer's first chunk (Stream.followServed). When a stream ends, Envoy calls
// on_done and then on_delete; on_delete alone does the work (a stream whose answer ended has
// released its load already, in its last response body chunk).

/** A load on a root context's channel (load_channel.ts): applied to every root's snapshot. */
export function proxy_on_grpc_receive(contextId: u32, token: u32, size: usize): void {
  if (roots.has(contextId)) {
    const load = receiveLoad(roots.get(contextId).channel, token, size);
    if (load !== null) {
      const all = roots.values();
      for (let i = 0; i < all.length; i++) all[i].snapshot.applyLoad(load);
    }
  }
  collectIfDue();
}

export function proxy_on_grpc_close(contextId: u32, token: u32, status: u32): void {
  if (roots.has(contextId)) channelClosed(roots.get(contextId).channel, token, status);
}

export function proxy_on_delete(contextId: u32): void {
  if (streams.has(contextId)) {
    streams.get(contextId).onDone(); // idempotent: releases what the stream still holds
    streams.delete(contextId);
  }
  else if (roots.has(contextId)) roots.delete(contextId);
  collectIfDue();
}
