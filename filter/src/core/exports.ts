// Entry point that exposes the pure decision logic (no host imports) to Node, for unit tests and
// simulations: the same code that runs in Envoy, compiled to build/core.wasm with JS bindings.
import { ModelScanner, ScanResult } from "./json_scan";
import { chooseTarget, endpointCosts, LocalLoad, pickEndpoint, Random } from "./pick";
import { parseSnapshot } from "./snapshot";

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
