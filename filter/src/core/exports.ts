// Entry point that exposes the pure decision logic (no host imports) to Node, for unit tests and
// simulations: the same code that runs in Envoy, compiled to build/core.wasm with JS bindings.
import { ModelScanner, ScanResult } from "./json_scan";
import { affinityEndpoint, chooseTarget, endpointCosts, isSaturated, LocalLoad, pickEndpoint, prefixHash, Random, withFallbacks } from "./pick";
import { Criticality, parseSnapshot } from "./snapshot";

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
  return "invalid " + scanner.error;
}

/** "ok <version> <models> <pools>" or "error <reason>". */
export function checkSnapshot(text: string): string {
  const parsed = parseSnapshot(text);
  const s = parsed.snapshot;
  if (s === null) return "error " + parsed.error;
  return "ok " + s.version + " " + s.models.size.toString() + " " + s.pools.size.toString();
}

/**
 * Routes `model` `n` times against a snapshot and counts the choices: lines "target <name> <n>"
 * and "endpoint <address> <n>", in first-seen order.
 */
export function simulateRouting(text: string, model: string, n: i32, seed: u64): string {
  const s = parseSnapshot(text).snapshot;
  if (s === null || !s.models.has(model)) return "error";
  const m = s.models.get(model);
  const random = new Random(seed);
  const names = new Array<string>();
  const counts = new Map<string, i32>();
  for (let i = 0; i < n; i++) {
    const t = chooseTarget(m, random);
    const local = new Array<LocalLoad>(m.pool.endpoints.length);
    for (let k = 0; k < local.length; k++) local[k] = new LocalLoad();
    const e = pickEndpoint(m.pool, endpointCosts(m.pool, local, s.tuning, t === null ? "" : t.name), 0, s.tuning, random);
    bump(names, counts, t === null ? "target -" : "target " + t.name);
    bump(names, counts, e < 0 ? "endpoint -" : "endpoint " + m.pool.endpoints[e].address);
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

/**
 * Replays a request sequence through the routing decision against one snapshot, for the golden
 * test that proves a refactor keeps routing unchanged. Each request line is
 * `model|prompt prefix|pending,inflight;pending,inflight;...` (this proxy's load on the model's
 * pool's endpoints, in snapshot order). Each output line is `reply <status>` or
 * `route <target> <endpoint>,<fallback>,... affinity=<0|1>`.
 */
export function replayDecisions(snapshotText: string, requests: string, seed: u64): string {
  const s = parseSnapshot(snapshotText).snapshot;
  if (s === null) return "error";
  const random = new Random(seed);
  const lines = requests.split("\n");
  let out = "";
  for (let r = 0; r < lines.length; r++) {
    if (lines[r].length == 0) continue;
    const parts = lines[r].split("|");
    const requested = parts[0];
    const prompt = String.UTF8.encode(parts[1]);
    const prefix = new StaticArray<u8>(1024);
    const promptLength = min(prompt.byteLength, 1024);
    for (let i = 0; i < promptLength; i++) prefix[i] = load<u8>(changetype<usize>(prompt) + <usize>i);
    if (!s.models.has(requested)) { out += "reply 404\n"; continue; }
    const model = s.models.get(requested);
    const target = chooseTarget(model, random);
    if (target === null) { out += "reply 503\n"; continue; }
    const pool = model.pool;
    if (model.criticality == Criticality.Sheddable && isSaturated(pool)) { out += "reply 429\n"; continue; }
    const loads = parts[2].length > 0 ? parts[2].split(";") : new Array<string>();
    const local = new Array<LocalLoad>(pool.endpoints.length);
    for (let k = 0; k < local.length; k++) {
      local[k] = new LocalLoad();
      if (k < loads.length) {
        const pair = loads[k].split(",");
        local[k].pendingPromptBytes = I64.parseInt(pair[0]);
        local[k].inflight = I64.parseInt(pair[1]);
      }
    }
    const affinity = prefixHash(prefix, promptLength, s.tuning.affinityBlocks);
    const costs = endpointCosts(pool, local, s.tuning, target.name);
    const index = pickEndpoint(pool, costs, affinity, s.tuning, random);
    if (index < 0) { out += "reply 503\n"; continue; }
    const affine = affinity != 0 && index == affinityEndpoint(pool, affinity);
    const order = withFallbacks(costs, index, 2);
    let destinations = pool.endpoints[order[0]].address;
    for (let i = 1; i < order.length; i++) destinations += "," + pool.endpoints[order[i]].address;
    out += "route " + target.name + " " + destinations + " affinity=" + (affine ? "1" : "0") + "\n";
  }
  return out;
}
