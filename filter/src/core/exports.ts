// Entry point that exposes the pure decision logic (no host imports) to Node, for unit tests and
// simulations: the same code that runs in Envoy, compiled to build/core.wasm with JS bindings.
import { decide, Decision, LoadSource, NoLoad } from "./decide";
import { jsonString } from "./errors";
import { HeaderPairs } from "./header_pairs";
import { isInferencePath } from "./routes";
import { ModelScanner, PROMPT_PREFIX_BYTES, ScanError, ScanResult } from "./json_scan";
import { LocalLoad, PrefixMemory, Random } from "./pick";
import { parseLoad, parseSnapshot, Pool, Route, Snapshot } from "./snapshot";
import { mirrorDestinations } from "./mirror";
import { chooseRoutePool, NO_CONTEXT, RequestContext, shedThreshold } from "./request";
import { decodeHex } from "./hex";
import { decodeLoadMessage, encodeWatchRequest } from "./load_message";

/**
 * Feeds `body` to the scanner in chunks of `chunkSize` bytes (the last call marks end of stream)
 * and describes the outcome: "found <start> <end> <model>", "missing", or "invalid <reason>".
 */
export function scanModel(body: Uint8Array, chunkSize: i32): string {
  const scanner = new ModelScanner();
  const base = body.dataStart;
  let result = ScanResult.NeedMore;
  for (let at = 0; at < body.length && result == ScanResult.NeedMore; at += chunkSize) {
    const len = min(chunkSize, body.length - at);
    result = scanner.feed(base + <usize>at, <usize>len);
  }
  if (result == ScanResult.NeedMore) result = scanner.finish();
  if (result == ScanResult.Found) return "found " + scanner.valueStart.toString() + " " + scanner.valueEnd.toString() + " " + scanner.model;
  if (result == ScanResult.Missing) return "missing";
  return "invalid " + scanErrorName(scanner.errorKind) + ": " + scanner.error;
}

function scanErrorName(kind: ScanError): string {
  switch (kind) {
    case ScanError.Syntax: return "syntax";
    case ScanError.TooDeep: return "too-deep";
    case ScanError.DuplicateModel: return "duplicate-model";
    case ScanError.ModelNotString: return "model-not-string";
    case ScanError.ModelTooLong: return "model-too-long";
    case ScanError.ModelNotUnicode: return "model-not-unicode";
    default: return "none";
  }
}

/** "ok <version> <models> <pools>" or "error <reason>". */
export function checkSnapshot(text: string): string {
  const parsed = parseSnapshot(text);
  const s = parsed.snapshot;
  if (s === null) return "error " + parsed.error;
  return "ok " + s.version + " " + s.models.size.toString() + " " + s.pools.size.toString();
}

/**
 * Every pool of a snapshot, after applying a load text to it ("" for none): per pool a line
 * "pool <name> <saturation>", then "endpoint <address> <score> <waiting> <kv> <lora-free> <loras>"
 * lines; or "error <reason>".
 */
export function describePools(snapshotText: string, loadText: string): string {
  const parsed = parseSnapshot(snapshotText);
  const s = parsed.snapshot;
  if (s === null) return "error " + parsed.error;
  if (loadText.length > 0) {
    const load = parseLoad(loadText);
    if (load.snapshot === null) return "error " + load.error;
    s.applyLoad(load.snapshot!);
  }
  let out = "";
  const pools = s.pools.values();
  for (let i = 0; i < pools.length; i++) {
    const p = pools[i];
    out += "pool " + p.name + " " + p.saturation.toString() + "\n";
    for (let j = 0; j < p.endpoints.length; j++) {
      const e = p.endpoints[j];
      out += "endpoint " + e.address + " " + e.score.toString() + " " + e.waiting.toString() + " " + e.kvPermille.toString() +
        " " + e.loraFree.toString() + " " + e.loras.join(",") + "\n";
    }
  }
  return out;
}

/**
 * Routes `model` `n` times against a snapshot with no local load and counts the choices: lines
 * "target <name> <n>" and "endpoint <address> <n>" (or "reply <status> <n>"), in first-seen order.
 */
export function simulateRouting(text: string, model: string, n: i32, seed: u64): string {
  const s = parseSnapshot(text).snapshot;
  if (s === null) return "error";
  const random = new Random(seed);
  const none = new NoLoad();
  const memory = new PrefixMemory();
  const empty = new StaticArray<u8>(0);
  const names = new Array<string>();
  const counts = new Map<string, i32>();
  for (let i = 0; i < n; i++) {
    const d = decide(s, model, empty, 0, none, random, NO_CONTEXT, memory);
    const reply = d.reply;
    if (reply !== null) { bump(names, counts, "reply " + reply.status.toString()); continue; }
    bump(names, counts, "target " + d.target);
    bump(names, counts, "endpoint " + d.chosen());
  }
  let out = "";
  for (let i = 0; i < names.length; i++) out += names[i] + " " + counts.get(names[i]).toString() + "\n";
  return out;
}

function bump(names: Array<string>, counts: Map<string, i32>, key: string): void {
  if (!counts.has(key)) { names.push(key); counts.set(key, 0); }
  counts.set(key, counts.get(key) + 1);
}

/** The raw prompt prefix the scanner kept, as a string (tests check what affinity hashes). */
export function scanPromptPrefix(body: Uint8Array, chunkSize: i32): string {
  const scanner = new ModelScanner();
  let result = ScanResult.NeedMore;
  for (let at = 0; at < body.length && result == ScanResult.NeedMore; at += chunkSize) {
    result = scanner.feed(body.dataStart + <usize>at, <usize>min(chunkSize, body.length - at));
  }
  if (result == ScanResult.NeedMore) scanner.finish();
  const out = new Uint8Array(scanner.promptLength);
  for (let i = 0; i < scanner.promptLength; i++) out[i] = scanner.promptPrefix[i];
  return String.UTF8.decode(out.buffer);
}

/** Loads given as text: `pending,inflight;pending,inflight;...` for the pool's endpoints in order. */
class TextLoads extends LoadSource {
  constructor(private text: string) { super(); }
  loadsOf(pool: Pool): Array<LocalLoad> {
    const parts = this.text.length > 0 ? this.text.split(";") : new Array<string>();
    const out = new Array<LocalLoad>(pool.endpoints.length);
    for (let k = 0; k < out.length; k++) {
      out[k] = new LocalLoad();
      if (k >= parts.length) continue;
      const pair = parts[k].split(",");
      out[k].pendingPromptBytes = I64.parseInt(pair[0]);
      out[k].inflight = I64.parseInt(pair[1]);
    }
    return out;
  }
}

/**
 * Replays a request sequence through `decide` against one snapshot, for the golden test that
 * proves a refactor keeps routing unchanged. Each request line is
 * `model|prompt prefix|pending,inflight;pending,inflight;...` (this proxy's load on the model's
 * pool's endpoints, in snapshot order). Each output line is `reply <status>` or
 * `route <target> <endpoint>,<fallback>,... affinity=<0|1>`. The requests share one prefix memory,
 * fresh for each replay, as the requests one Envoy worker routes share its VM's.
 */
export function replayDecisions(snapshotText: string, requests: string, seed: u64): string {
  const s = parseSnapshot(snapshotText).snapshot;
  if (s === null) return "error";
  const random = new Random(seed);
  const memory = new PrefixMemory();
  const lines = requests.split("\n");
  let out = "";
  for (let r = 0; r < lines.length; r++) {
    if (lines[r].length == 0) continue;
    const parts = lines[r].split("|");
    const prompt = String.UTF8.encode(parts[1]);
    const prefix = new StaticArray<u8>(PROMPT_PREFIX_BYTES);
    const promptLength = min(prompt.byteLength, PROMPT_PREFIX_BYTES);
    for (let i = 0; i < promptLength; i++) prefix[i] = load<u8>(changetype<usize>(prompt) + <usize>i);
    const d = decide(s, parts[0], prefix, promptLength, new TextLoads(parts[2]), random, NO_CONTEXT, memory);
    const reply = d.reply;
    if (reply !== null) { out += "reply " + reply.status.toString() + "\n"; continue; }
    out += "route " + d.target + " " + d.destinations() + " affinity=" + (d.affinity ? "1" : "0") + "\n";
  }
  return out;
}

/**
 * Feeds `body` to the scanner split at the (rising) offsets in `cuts`; same answer as scanModel.
 * Each chunk is fed from its own buffer followed by eight `poison` bytes, as Envoy hands the filter
 * each chunk in a buffer of its own: a scanner that read past the end of a chunk would see them
 * (tests run it with a hex digit and with a UTF-8 continuation byte, which each fast path accepts).
 */
export function scanModelSplit(body: Uint8Array, cuts: Uint32Array, poison: u8): string {
  const scanner = new ModelScanner();
  let at = 0;
  for (let k = 0; k <= cuts.length; k++) {
    const end = k < cuts.length ? min(<i32>cuts[k], body.length) : body.length;
    if (end <= at) continue;
    const len = end - at;
    const chunk = new Uint8Array(len + 8);
    memory.copy(chunk.dataStart, body.dataStart + <usize>at, <usize>len);
    chunk.fill(poison, len);
    if (scanner.feed(chunk.dataStart, <usize>len) != ScanResult.NeedMore) break;
    at = end;
  }
  const result = scanner.finish();
  if (result == ScanResult.Found) return "found " + scanner.valueStart.toString() + " " + scanner.valueEnd.toString() + " " + scanner.model;
  if (result == ScanResult.Missing) return "missing";
  return "invalid " + scanErrorName(scanner.errorKind) + ": " + scanner.error;
}

/** The JSON string literal the filter writes when it rewrites `model`. */
export function quoteJson(text: string): string {
  return jsonString(text);
}

/** Whether the filter treats `path` as an inference route (after normalization). */
export function inferencePath(path: string): bool {
  return isInferencePath(path);
}

/** The tuning the filter decodes from a snapshot, `key value` per line, or "error <reason>". */
export function describeTuning(text: string): string {
  const parsed = parseSnapshot(text);
  const s = parsed.snapshot;
  return s === null ? "error " + parsed.error : s.tuning.describe();
}

// A stateful router for the policy lab (bench/lab/): one per Envoy worker, holding the snapshot
// last pushed to it and its own random source, as a worker's VM does. Thin wrappers over the
// scanner and decide(): the lab drives exactly the code Envoy runs, request body in, decision out.

class LabRouter {
  snapshot: Snapshot | null = null;
  random: Random;
  /** The worker VM's prefix memory (shared with the other workers of its Envoy: routerShareMemory). */
  memory: PrefixMemory = new PrefixMemory();
  /** The lab's endpoint order: its load arrays are given in this order. */
  addresses: Array<string> = new Array<string>();
  constructor(seed: u64) { this.random = new Random(seed); }
}

const labRouters = new Array<LabRouter>();

/** A new router (a worker's VM); returns its handle. */
export function routerCreate(seed: u64): i32 {
  labRouters.push(new LabRouter(seed));
  return labRouters.length - 1;
}

/** Makes router `handle` use router `other`'s prefix memory: the workers of one Envoy share their
 * picks through shared data (filter/src/shared_load.ts), so they keep one memory between them. */
export function routerShareMemory(handle: i32, other: i32): void {
  labRouters[handle].memory = labRouters[other].memory;
}

/** The endpoint addresses the load arrays of routerRoute refer to, comma-separated. */
export function routerEndpoints(handle: i32, addresses: string): void {
  labRouters[handle].addresses = addresses.length > 0 ? addresses.split(",") : new Array<string>();
}

/** A pushed snapshot, as proxy_on_configure takes it: "ok <version>", or "error <reason>" (the
 * previous snapshot is kept, as Envoy keeps the last good configuration on a NACK). */
export function routerConfigure(handle: i32, text: string): string {
  const parsed = parseSnapshot(text);
  const s = parsed.snapshot;
  if (s === null) return "error " + parsed.error;
  labRouters[handle].snapshot = s;
  return "ok " + s.version;
}

/** Loads as the lab keeps them, by address in routerEndpoints order: [pending, inflight, ...]. */
class ArrayLoads extends LoadSource {
  constructor(private addresses: Array<string>, private values: Float64Array) { super(); }
  loadsOf(pool: Pool): Array<LocalLoad> {
    const out = new Array<LocalLoad>(pool.endpoints.length);
    for (let i = 0; i < out.length; i++) {
      out[i] = new LocalLoad();
      const k = this.addresses.indexOf(pool.endpoints[i].address);
      if (k < 0 || 2 * k + 1 >= this.values.length) continue;
      out[i].pendingPromptBytes = <i64>this.values[2 * k];
      out[i].inflight = <i64>this.values[2 * k + 1];
    }
    return out;
  }
}

/**
 * Routes one request body as the filter does (stream.ts): the whole body through the scanner, then
 * decide() with this proxy's loads. "route <target> <endpoint>,<fallback>,... <affinity 0|1>
 * <body bytes>" (body bytes: what the filter counts as pending prompt), "reply <status>", or
 * "invalid <reason>" for a body the filter would refuse with 400.
 */
export function routerRoute(handle: i32, body: Uint8Array, loads: Float64Array): string {
  const r = labRouters[handle];
  const s = r.snapshot;
  if (s === null) return "reply 503";
  const scanner = new ModelScanner();
  scanner.feed(body.dataStart, <usize>body.length);
  const result = scanner.finish(); // the whole body, as stream.ts scans it before it routes
  if (result == ScanResult.Invalid) return "invalid " + scanner.error;
  if (result == ScanResult.Missing) return "invalid missing model";
  const d: Decision = decide(s, scanner.model, scanner.promptPrefix, scanner.promptLength, new ArrayLoads(r.addresses, loads), r.random, NO_CONTEXT, r.memory);
  const reply = d.reply;
  if (reply !== null) return "reply " + reply.status.toString();
  return "route " + d.target + " " + d.destinations() + " " + (d.affinity ? "1" : "0") + " " + body.length.toString();
}

/** The saturation (×1000) from which a request of `priority` is shed (-1 when never). */
export function shedThresholdOf(priority: i32): i64 {
  const t = shedThreshold(priority);
  return t == i64.MAX_VALUE ? -1 : t;
}

/**
 * Routes `model` `n` times as a request whose route chose `cluster` ("" for none) and that names
 * `objective` ("" for none), with no local load, as the filter does: the route's pool by weight,
 * then decide(), then the mirror endpoints. Counts lines "pool <name>", "target <name>",
 * "mirror <addresses>" (or "reply <status>"), in first-seen order.
 */
export function simulateRequest(text: string, model: string, cluster: string, objective: string, n: i32, seed: u64): string {
  const s = parseSnapshot(text).snapshot;
  if (s === null) return "error";
  const random = new Random(seed);
  const none = new NoLoad();
  const memory = new PrefixMemory();
  const empty = new StaticArray<u8>(0);
  const names = new Array<string>();
  const counts = new Map<string, i32>();
  const route: Route | null = s.routes.has(cluster) ? s.routes.get(cluster) : null;
  for (let i = 0; i < n; i++) {
    const context = new RequestContext();
    context.objective = objective;
    if (route !== null) context.pool = chooseRoutePool(route, random);
    const d = decide(s, model, empty, 0, none, random, context, memory);
    const reply = d.reply;
    if (reply !== null) { bump(names, counts, "reply " + reply.status.toString()); continue; }
    bump(names, counts, "pool " + d.pool!.name);
    bump(names, counts, "target " + d.target);
    if (route !== null && route.mirrors.length > 0) bump(names, counts, "mirror " + mirrorDestinations(s, route, d.target, empty, 0, none, random, memory));
  }
  let out = "";
  for (let i = 0; i < names.length; i++) out += names[i] + " " + counts.get(names[i]).toString() + "\n";
  return out;
}

/** Reads a serialized header map (core/header_pairs.ts): "invalid", or the first value of each
 * name in `names` (NUL-separated), one per line, "-" when absent. */
export function lookupHeaderPairs(data: Uint8Array, names: string): string {
  const copy = new ArrayBuffer(data.length);
  memory.copy(changetype<usize>(copy), data.dataStart, <usize>data.length);
  const headers = new HeaderPairs(copy);
  if (!headers.valid) return "invalid";
  const wanted = names.split("\0");
  const out = new Array<string>();
  for (let i = 0; i < wanted.length; i++) {
    const value = headers.get(String.UTF8.encode(wanted[i]));
    out.push(value === null ? "-" : value);
  }
  return out.join("\n");
}

/** A load channel message (load_message.ts): "ok <version>\n<text>" or "error <reason>". */
export function decodeLoad(bytes: Uint8Array): string {
  const m = decodeLoadMessage(bytes.dataStart, <usize>bytes.length);
  return m.error.length > 0 ? "error " + m.error : "ok " + m.version + "\n" + m.text;
}

/** The bytes of a `load-channel` record's hex, as comma-separated numbers; "null" if not hex. */
export function hexBytes(text: string): string {
  const bytes = decodeHex(text);
  if (bytes === null) return "null";
  const view = Uint8Array.wrap(bytes);
  const out = new Array<string>(view.length);
  for (let i = 0; i < view.length; i++) out[i] = view[i].toString();
  return out.join(",");
}

/** The stream's request for a snapshot version, as the filter sends it. */
export function watchRequest(snapshotVersion: string): Uint8Array {
  return Uint8Array.wrap(encodeWatchRequest(snapshotVersion));
}
