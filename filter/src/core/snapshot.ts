// The routing snapshot the extension server pushes (as the Wasm plugin configuration, over ECDS).
//
// Format: UTF-8 text, one record per line, fields separated by single spaces. Names never contain
// whitespace (the extension server validates that). Unknown record kinds are ignored so a newer
// server can add records without breaking an older filter. Example:
//
//   infergate-snapshot 1
//   version 42
//   pool reasoning-pool
//   endpoint 10.0.0.5:8000 1000
//   model qwq reasoning-pool critical
//   target qwq-32b 100
//
// `endpoint` lines belong to the pool above them, `target` lines to the model above them. Scores
// are integers 0–1000, higher is better. After the score an endpoint line may carry `key=value`
// attributes; this filter reads these and ignores any other:
//
//   loras=<a,b,...>               LoRA adapters running or waiting there
//   lora-free=<0|1>               whether an adapter slot is free
//   waiting=<n>                   the engine's waiting requests as last scraped (vllm:num_requests_waiting)
//   kv=<permille>                 its KV-cache use ×1000 as last scraped (vllm:kv_cache_usage_perc)
//
// With `waiting` and `kv` the picker costs an endpoint in absolute terms (pick.ts); without them (an
// older server) it falls back to the score. A malformed value of these is ignored like an absent one.
// Also:
//
//   saturation <pool> <milli>     pool saturation ×1000 (core/request.ts: which priorities it sheds)
//   tuning <key> <value>          picker weights (see Tuning); an unknown key rejects the snapshot
//   objective <name> <pool> <priority>
//                                 an InferenceObjective: requests naming it in x-gateway-inference-objective,
//                                 routed to <pool>, get <priority> (a signed integer; negative: sheddable)
//   route <cluster> <pool> <weight> [<pool> <weight>...]
//                                 an HTTPRoute rule, by the name of the cluster Envoy's route chose: the
//                                 filter picks one of the pools by weight, and routes there whatever the
//                                 model's own pool is
//   mirror <cluster> <pool>       the route also mirrors to <pool>: the filter picks an endpoint there too
//   picker <pool>                 an endpoint picker (a v1 pool's endpointPickerRef) routes the pool's
//                                 requests: the filter follows its requests to the endpoint that served them
//   load-channel <hex>            where the live load comes from: a serialized
//                                 envoy.config.core.v3.GrpcService, in hex (load_channel.ts)
//
// The live part of those records (each pool's `endpoint` lines and `saturation`) also arrives on
// its own, as the load text, on every scrape that changes it; the rest arrives only when the
// configuration changes. The load text has the header `infergate-load 1` and then `pool` blocks
// of `endpoint` lines and `saturation` records, in the format above:
//
//   infergate-load 1
//   pool reasoning-pool
//   endpoint 10.0.0.5:8000 870 waiting=3 kv=412
//   saturation reasoning-pool 120
//
// It replaces, for each pool it names that the snapshot has, that pool's endpoints and saturation
// (applyLoad). Why two texts: Envoy builds a new Wasm plugin for every new plugin configuration and
// keeps a few hundred bytes of each for good (proxy-wasm-cpp-host's per-VM fail callbacks and
// canary cache hold its key, which holds the configuration), so the load travels outside it: the
// extension server pushes it on a gRPC stream each root context holds (load_channel.ts).
//
// A model named `*` applies to every model name no other record declares (an InferenceModelRewrite
// rule without matches).
//
// Pure module: no host imports.

import { decodeHex } from "./hex";

export const FORMAT_HEADER = "infergate-snapshot 1";
export const LOAD_FORMAT_HEADER = "infergate-load 1";

/** The largest tuning value accepted (costs are saturating anyway; this keeps them meaningful). */
export const MAX_TUNING: i64 = 1_000_000_000_000;

export const enum Criticality { Critical = 0, Standard = 1, Sheddable = 2 }

export class Endpoint {
  /** Hash of the address, for rendezvous (prefix-affinity) hashing. */
  hash: u64;
  /** LoRA adapters running or waiting there. */
  loras: Array<string> = new Array<string>();
  /** 1: a LoRA slot is free; 0: full; -1: not reported. */
  loraFree: i32 = -1;
  /** Requests waiting in the engine's queue, as last scraped; -1: not reported. */
  waiting: i64 = -1;
  /** KV-cache use in thousandths (0–1000), as last scraped; -1: not reported. */
  kvPermille: i64 = -1;
  constructor(public address: string, public score: i64) {
    this.hash = fnv1a64(address);
  }
}

export class Pool {
  endpoints: Array<Endpoint> = new Array<Endpoint>();
  /** Saturation ×1000, as the extension server measured it. */
  saturation: i64 = 0;
  /** Whether an endpoint picker routes this pool's requests (its choice may not be this filter's). */
  picker: bool = false;
  constructor(public name: string) {}
}

/**
 * How the picker weighs its signals (pick.ts). Costs are in bytes of prompt waiting ahead of the
 * request: a byte of prompt queued for prefill is the unit every other signal is converted to.
 */
export class Tuning {
  /** Old servers only (no `waiting`/`kv` on endpoint lines): cost of one point of score below 1000. */
  scoreWeight: i64 = 40;
  /** Cost of one request of this proxy in flight on the endpoint (its decode load). */
  inflightWeight: i64 = 2048;
  /** Cost of one request the engine reports waiting: a typical prompt's bytes. */
  waitingBytes: i64 = 16384;
  /** KV pressure: above `kvThreshold` (thousandths), an endpoint costs
   * kvBytes × (kv − threshold) / (1000 − kv + 20), which grows without bound as the cache fills. */
  kvBytes: i64 = 16384;
  kvThreshold: i64 = 800;
  /** Endpoints within this much of the cheapest are near-best. */
  nearBestBytes: i64 = 2048;
  /** ...or within this percentage of the cheapest cost. */
  nearBestPercent: i64 = 5;
  /** Prefix affinity: endpoints this proxy recently sent the prompt's prefix to are preferred by
   * this many bytes over those it did not. */
  affinityBytes: i64 = 16384;
  /** ...where "recently" means within its last this-many requests to that endpoint. */
  affinityMemory: i64 = 32;
  /** Prefix blocks (64 bytes of the raw prompt JSON each) that identify a prefix. */
  affinityBlocks: i32 = 4;
  /** Cost of sending a LoRA request where its adapter must be loaded into a free slot... */
  loraLoadBytes: i64 = 8192;
  /** ...or where every slot is taken (it waits for one). */
  loraFullBytes: i64 = 262144;

  /** Sets a tuning key; false for a key this filter does not know (the snapshot is then
   * rejected: a misspelt key must not be ignored silently). */
  set(key: string, value: i64): bool {
    if (key == "score-weight") this.scoreWeight = value;
    else if (key == "inflight-weight") this.inflightWeight = value;
    else if (key == "waiting-bytes") this.waitingBytes = value;
    else if (key == "kv-bytes") this.kvBytes = value;
    else if (key == "kv-threshold") this.kvThreshold = min<i64>(value, 1000);
    else if (key == "near-best-bytes") this.nearBestBytes = value;
    else if (key == "near-best-percent") this.nearBestPercent = value;
    else if (key == "affinity-bytes") this.affinityBytes = value;
    else if (key == "affinity-memory") this.affinityMemory = value;
    else if (key == "affinity-blocks") this.affinityBlocks = <i32>min<i64>(value, 16);
    else if (key == "lora-load-bytes") this.loraLoadBytes = value;
    else if (key == "lora-full-bytes") this.loraFullBytes = value;
    // The earlier picker's hard affinity bound; servers still send it. Accepted, no longer used.
    else if (key == "affinity-bound-bytes") {}
    else return false;
    return true;
  }

  /** Every key and value, one `key value` line each. */
  describe(): string {
    return "score-weight " + this.scoreWeight.toString() + "\ninflight-weight " + this.inflightWeight.toString() +
      "\nwaiting-bytes " + this.waitingBytes.toString() + "\nkv-bytes " + this.kvBytes.toString() + "\nkv-threshold " + this.kvThreshold.toString() +
      "\nnear-best-bytes " + this.nearBestBytes.toString() + "\nnear-best-percent " + this.nearBestPercent.toString() +
      "\naffinity-bytes " + this.affinityBytes.toString() + "\naffinity-memory " + this.affinityMemory.toString() +
      "\naffinity-blocks " + this.affinityBlocks.toString() +
      "\nlora-load-bytes " + this.loraLoadBytes.toString() + "\nlora-full-bytes " + this.loraFullBytes.toString() + "\n";
  }
}

export function fnv1a64(text: string): u64 {
  let h: u64 = 0xcbf29ce484222325;
  for (let i = 0; i < text.length; i++) {
    h ^= <u64>text.charCodeAt(i);
    h *= 0x100000001b3;
  }
  return h;
}

export class Target {
  constructor(public name: string, public weight: i64) {}
}

export class Model {
  targets: Array<Target> = new Array<Target>();
  totalWeight: i64 = 0;
  constructor(public name: string, public pool: Pool, public criticality: Criticality) {}
}

/** An HTTPRoute rule: the pools its route sends to, by weight, and the pools it mirrors to. */
export class Route {
  pools: Array<Pool> = new Array<Pool>();
  weights: Array<i64> = new Array<i64>();
  totalWeight: i64 = 0;
  mirrors: Array<Pool> = new Array<Pool>();
  constructor(public cluster: string) {}
}

/** The model name an InferenceModelRewrite rule without matches declares. */
export const ANY_MODEL = "*";

export class Snapshot {
  version: string = "";
  tuning: Tuning = new Tuning();
  pools: Map<string, Pool> = new Map<string, Pool>();
  models: Map<string, Model> = new Map<string, Model>();
  /** Objective priorities, by `<pool> <objective>`. */
  objectives: Map<string, i32> = new Map<string, i32>();
  /** Routes, by cluster name. */
  routes: Map<string, Route> = new Map<string, Route>();
  /** The `load-channel` record: the GrpcService the live load arrives over; null if none. */
  loadChannel: ArrayBuffer | null = null;

  /**
   * Applies a load text's pools (parseLoad): each pool of this snapshot that the load names gets
   * the load's endpoints and saturation; pools the load does not name keep theirs.
   */
  applyLoad(load: Snapshot): void {
    const names = load.pools.keys();
    for (let i = 0; i < names.length; i++) {
      if (!this.pools.has(names[i])) continue;
      const from = load.pools.get(names[i]);
      const to = this.pools.get(names[i]);
      to.endpoints = from.endpoints;
      to.saturation = from.saturation;
    }
  }

  /** The model a requested name resolves to: its own record, else the `*` record; null if neither. */
  model(name: string): Model | null {
    if (this.models.has(name)) return this.models.get(name);
    if (this.models.has(ANY_MODEL)) return this.models.get(ANY_MODEL);
    return null;
  }
}

/** Result of parsing: a snapshot, or the reason the text was rejected. */
export class ParseResult {
  snapshot: Snapshot | null = null;
  error: string = "";
}

function parseCriticality(word: string): i32 {
  if (word == "critical") return Criticality.Critical;
  if (word == "standard") return Criticality.Standard;
  if (word == "sheddable") return Criticality.Sheddable;
  return -1;
}

/** More waiting requests than this on one engine are not believed (a hostile or broken reading). */
export const MAX_WAITING: i64 = 1_000_000;

/** A non-negative integer no larger than `bound`, or -1 (absent) for anything else. */
function boundedOrAbsent(word: string, bound: i64): i64 {
  const v = parseNonNegative(word);
  return v < 0 || v > bound ? -1 : v;
}

function parseNonNegative(word: string): i64 {
  if (word.length == 0 || word.length > 18) return -1;
  let v: i64 = 0;
  for (let i = 0; i < word.length; i++) {
    const c = word.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
    v = v * 10 + <i64>(c - 0x30);
  }
  return v;
}

/** A signed integer of at most 18 digits; `ok` false otherwise. */
class Signed { constructor(public ok: bool, public value: i64) {} }
function parseSigned(word: string): Signed {
  const negative = word.startsWith("-");
  const v = parseNonNegative(negative ? word.substring(1) : word);
  return new Signed(v >= 0, negative ? -v : v);
}

/** Objectives and priorities are within ±1,000,000 (the extension server's bound). */
export const MAX_PRIORITY: i64 = 1_000_000;

class Parser {
  snapshot: Snapshot = new Snapshot();
  pool: Pool | null = null;
  model: Model | null = null;
  error: string = "";

  /** A load text: records other than pools, endpoints and saturation are ignored (as unknown
   * kinds are: a newer server may add some). */
  loadOnly: bool = false;

  line(fields: string[], lineNo: i32): bool {
    const kind = fields[0];
    if (this.loadOnly && kind != "pool" && kind != "endpoint" && kind != "saturation") return true;
    if (kind == "version") return this.expect(fields, 2, lineNo) && this.setVersion(fields[1]);
    if (kind == "pool") return this.expect(fields, 2, lineNo) && this.addPool(fields[1], lineNo);
    if (kind == "endpoint") return this.expectAtLeast(fields, 3, lineNo) && this.addEndpoint(fields, lineNo);
    if (kind == "saturation") return this.expect(fields, 3, lineNo) && this.setSaturation(fields[1], fields[2], lineNo);
    if (kind == "tuning") return this.expect(fields, 3, lineNo) && this.setTuning(fields[1], fields[2], lineNo);
    if (kind == "model") return this.expect(fields, 4, lineNo) && this.addModel(fields[1], fields[2], fields[3], lineNo);
    if (kind == "target") return this.expect(fields, 3, lineNo) && this.addTarget(fields[1], fields[2], lineNo);
    if (kind == "objective") return this.expect(fields, 4, lineNo) && this.addObjective(fields[1], fields[2], fields[3], lineNo);
    if (kind == "route") return this.expectAtLeast(fields, 4, lineNo) && this.addRoute(fields, lineNo);
    if (kind == "mirror") return this.expect(fields, 3, lineNo) && this.addMirror(fields[1], fields[2], lineNo);
    if (kind == "picker") return this.expect(fields, 2, lineNo) && this.setPicker(fields[1], lineNo);
    if (kind == "load-channel") return this.expect(fields, 2, lineNo) && this.setLoadChannel(fields[1], lineNo);
    return true; // unknown record kinds are for newer filters
  }

  private expect(fields: string[], count: i32, lineNo: i32): bool {
    if (fields.length == count) return true;
    return this.fail(lineNo, "'" + fields[0] + "' takes " + (count - 1).toString() + " fields");
  }

  private expectAtLeast(fields: string[], count: i32, lineNo: i32): bool {
    if (fields.length >= count) return true;
    return this.fail(lineNo, "'" + fields[0] + "' takes at least " + (count - 1).toString() + " fields");
  }

  private setSaturation(poolName: string, milli: string, lineNo: i32): bool {
    if (!this.snapshot.pools.has(poolName)) return this.fail(lineNo, "saturation of unknown pool " + poolName);
    const v = parseNonNegative(milli);
    if (v < 0) return this.fail(lineNo, "saturation must be a non-negative integer");
    this.snapshot.pools.get(poolName).saturation = v;
    return true;
  }

  private setPicker(poolName: string, lineNo: i32): bool {
    if (!this.snapshot.pools.has(poolName)) return this.fail(lineNo, "picker of unknown pool " + poolName);
    this.snapshot.pools.get(poolName).picker = true;
    return true;
  }

  private setLoadChannel(hex: string, lineNo: i32): bool {
    const service = decodeHex(hex);
    if (service === null) return this.fail(lineNo, "load-channel must be hex");
    this.snapshot.loadChannel = service;
    return true;
  }

  private setTuning(key: string, value: string, lineNo: i32): bool {
    const v = parseNonNegative(value);
    if (v < 0 || v > MAX_TUNING) return this.fail(lineNo, "tuning value must be an integer from 0 to " + MAX_TUNING.toString());
    if (!this.snapshot.tuning.set(key, v)) return this.fail(lineNo, "unknown tuning key " + key);
    return true;
  }

  private fail(lineNo: i32, message: string): bool {
    this.error = "snapshot line " + lineNo.toString() + ": " + message;
    return false;
  }

  private setVersion(v: string): bool { this.snapshot.version = v; return true; }

  private addPool(name: string, lineNo: i32): bool {
    if (this.snapshot.pools.has(name)) return this.fail(lineNo, "duplicate pool " + name);
    const pool = new Pool(name);
    this.snapshot.pools.set(name, pool);
    this.pool = pool;
    return true;
  }

  private addEndpoint(fields: string[], lineNo: i32): bool {
    const pool = this.pool;
    if (pool === null) return this.fail(lineNo, "endpoint before any pool");
    const address = fields[1];
    const s = parseNonNegative(fields[2]);
    if (s < 0) return this.fail(lineNo, "endpoint score must be a non-negative integer");
    if (address.lastIndexOf(":") <= 0) return this.fail(lineNo, "endpoint address must be ip:port");
    const endpoint = new Endpoint(address, s);
    // Optional key=value attributes; unknown keys are for newer filters.
    for (let i = 3; i < fields.length; i++) {
      const eq = fields[i].indexOf("=");
      if (eq <= 0) continue;
      const key = fields[i].substring(0, eq);
      const value = fields[i].substring(eq + 1);
      if (key == "loras") endpoint.loras = value.split(",");
      else if (key == "lora-free") endpoint.loraFree = value == "1" ? 1 : 0;
      else if (key == "waiting") endpoint.waiting = boundedOrAbsent(value, MAX_WAITING);
      else if (key == "kv") endpoint.kvPermille = boundedOrAbsent(value, 1000);
    }
    pool.endpoints.push(endpoint);
    return true;
  }

  private addModel(name: string, poolName: string, criticality: string, lineNo: i32): bool {
    if (!this.snapshot.pools.has(poolName)) return this.fail(lineNo, "model " + name + " names unknown pool " + poolName);
    if (this.snapshot.models.has(name)) return this.fail(lineNo, "duplicate model " + name);
    const c = parseCriticality(criticality);
    if (c < 0) return this.fail(lineNo, "criticality must be critical, standard or sheddable");
    const model = new Model(name, this.snapshot.pools.get(poolName), <Criticality>c);
    this.snapshot.models.set(name, model);
    this.model = model;
    return true;
  }

  private addObjective(name: string, poolName: string, priority: string, lineNo: i32): bool {
    if (!this.snapshot.pools.has(poolName)) return this.fail(lineNo, "objective " + name + " names unknown pool " + poolName);
    const key = poolName + " " + name;
    if (this.snapshot.objectives.has(key)) return this.fail(lineNo, "duplicate objective " + name + " in pool " + poolName);
    const p = parseSigned(priority);
    if (!p.ok || p.value > MAX_PRIORITY || p.value < -MAX_PRIORITY) return this.fail(lineNo, "objective priority must be an integer within ±" + MAX_PRIORITY.toString());
    this.snapshot.objectives.set(key, <i32>p.value);
    return true;
  }

  private addRoute(fields: string[], lineNo: i32): bool {
    const cluster = fields[1];
    if ((fields.length - 2) % 2 != 0) return this.fail(lineNo, "route takes a cluster, then pool and weight pairs");
    if (this.snapshot.routes.has(cluster)) return this.fail(lineNo, "duplicate route " + cluster);
    const route = new Route(cluster);
    for (let i = 2; i < fields.length; i += 2) {
      if (!this.snapshot.pools.has(fields[i])) return this.fail(lineNo, "route " + cluster + " names unknown pool " + fields[i]);
      const w = parseNonNegative(fields[i + 1]);
      if (w < 0 || w > 1_000_000) return this.fail(lineNo, "route weight must be an integer from 0 to 1000000");
      route.pools.push(this.snapshot.pools.get(fields[i]));
      route.weights.push(w);
      route.totalWeight += w;
    }
    if (route.totalWeight <= 0) return this.fail(lineNo, "route " + cluster + " has no positive weight");
    this.snapshot.routes.set(cluster, route);
    return true;
  }

  private addMirror(cluster: string, poolName: string, lineNo: i32): bool {
    if (!this.snapshot.routes.has(cluster)) return this.fail(lineNo, "mirror of unknown route " + cluster);
    if (!this.snapshot.pools.has(poolName)) return this.fail(lineNo, "mirror names unknown pool " + poolName);
    this.snapshot.routes.get(cluster).mirrors.push(this.snapshot.pools.get(poolName));
    return true;
  }

  private addTarget(name: string, weight: string, lineNo: i32): bool {
    const model = this.model;
    if (model === null) return this.fail(lineNo, "target before any model");
    const w = parseNonNegative(weight);
    if (w < 0) return this.fail(lineNo, "target weight must be a non-negative integer");
    model.targets.push(new Target(name, w));
    model.totalWeight += w;
    return true;
  }
}

export function parseSnapshot(text: string): ParseResult {
  return parse(text, FORMAT_HEADER, false);
}

/** Parses a load text (see the top of this file): only its `pool`, `endpoint` and `saturation` records are read. */
export function parseLoad(text: string): ParseResult {
  return parse(text, LOAD_FORMAT_HEADER, true);
}

function parse(text: string, header: string, loadOnly: bool): ParseResult {
  const result = new ParseResult();
  const lines = text.split("\n");
  if (lines.length == 0 || lines[0].trim() != header) {
    result.error = (loadOnly ? "load" : "snapshot") + " must start with '" + header + "'";
    return result;
  }
  const parser = new Parser();
  parser.loadOnly = loadOnly;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line.length == 0 || line.charCodeAt(0) == 0x23 /* # */) continue;
    if (!parser.line(line.split(" "), i + 1)) {
      result.error = parser.error;
      return result;
    }
  }
  result.snapshot = parser.snapshot;
  return result;
}
