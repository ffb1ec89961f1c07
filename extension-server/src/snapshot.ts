// Renders the routing snapshot the filter decodes (format documented in filter/src/core/snapshot.ts)
// from the configuration and the scheduler's latest schedule, and its live part, the load text,
// which Envoy receives on its own on every scrape that changes it (publisher.ts).
//
// The renderer is the last gate before every Envoy: a record the filter would reject makes Envoy
// NACK the whole snapshot, and every later one. So every field is checked here, whatever checked
// it before: names against SNAPSHOT_NAME, numbers as non-negative safe integers. A record with a
// bad field is dropped and reported through `onDropped`, with what depends on it (a pool's
// endpoints and models, a model's targets); everything else is written.
import { ANY_MODEL, type PoolConfig, type RoutingConfig } from "./config/routing-config.ts";
import { LOAD_FORMAT_HEADER, SNAPSHOT_FORMAT_HEADER, SNAPSHOT_NAME } from "./contract.ts";
import { MAX_WAITING, type EndpointScore, type PoolSchedule, type Schedule } from "./scheduling/scheduler.ts";

/** Score of an endpoint with no schedule yet: every endpoint ties, so the filter spreads at random. */
const NEUTRAL_SCORE = 1000;
/** The filter reads numbers of up to 18 digits. */
const MAX_NUMBER = 1e15;
const ENDPOINT = /^(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/;

export type DroppedRecord = (record: string, why: string) => void;

export function endpointAddress(e: { ip: string; port: number }): string {
  return e.ip.includes(":") ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`;
}

class BadField extends Error {}

function name(value: string, what: string): string {
  if (!SNAPSHOT_NAME.test(value) && !(what === "model" && value === ANY_MODEL)) throw new BadField(`${what} ${JSON.stringify(value)} is not a safe name`);
  return value;
}

function integer(value: number, what: string): string {
  if (!Number.isSafeInteger(value) || value < 0 || value > MAX_NUMBER) throw new BadField(`${what} ${value} is not a non-negative integer`);
  return String(value);
}

/** An integer in [0, max]: the filter reads a value out of its range as absent, so none is written. */
function bounded(value: number, max: number, what: string): string {
  if (!(value <= max)) throw new BadField(`${what} ${value} is more than ${max}`);
  return integer(value, what);
}

function signed(value: number, what: string): string {
  if (!Number.isSafeInteger(value) || Math.abs(value) > MAX_NUMBER) throw new BadField(`${what} ${value} is not an integer`);
  return String(value);
}

/** Runs `build`; a bad field drops the record it was building. */
function record(label: string, onDropped: DroppedRecord, build: () => string[]): string[] {
  try {
    return build();
  } catch (err) {
    if (!(err instanceof BadField)) throw err;
    onDropped(label, err.message);
    return [];
  }
}

function endpointLine(address: string, e: EndpointScore, score: number): string {
  if (!ENDPOINT.test(address)) throw new BadField(`address ${JSON.stringify(address)} is not ip:port`);
  integer(score, "score");
  let line = `endpoint ${address} ${Math.min(1000, score)}`;
  if (e.loras && e.loras.length > 0) line += ` loras=${e.loras.map((l) => name(l, "LoRA adapter")).join(",")}`;
  if (e.loraFree !== undefined) line += ` lora-free=${e.loraFree ? 1 : 0}`;
  if (e.waiting !== undefined) line += ` waiting=${bounded(e.waiting, MAX_WAITING, "waiting")}`;
  if (e.kvPermille !== undefined) line += ` kv=${bounded(e.kvPermille, 1000, "kv")}`;
  return line;
}

/** The pool and its routable endpoints. Without a schedule every endpoint is routable, neutral. */
function poolLines(pool: PoolConfig, scheduled: PoolSchedule | undefined, onDropped: DroppedRecord): string[] {
  const head = record(`pool ${pool.id}`, onDropped, () => [`pool ${name(pool.id, "pool")}`]);
  if (head.length === 0) return [];
  const lines = [...head];
  for (const e of pool.endpoints) {
    const address = endpointAddress(e);
    const s = scheduled ? scheduled.endpoints.get(address) : { ready: true, score: NEUTRAL_SCORE };
    if (s?.score === undefined) continue;
    const score = s.score;
    lines.push(...record(`endpoint ${address}`, onDropped, () => [endpointLine(address, s, score)]));
  }
  const milli = Math.round((scheduled?.saturation ?? 0) * 1000);
  lines.push(...record(`saturation ${pool.id}`, onDropped, () => [`saturation ${pool.id} ${integer(milli, "saturation")}`]));
  return lines;
}

export const TUNING_KEYS: Array<[string, keyof RoutingConfig["scheduler"]["picker"]]> = [
  ["score-weight", "scoreWeight"], ["inflight-weight", "inflightWeight"], ["waiting-bytes", "waitingBytes"],
  ["kv-bytes", "kvBytes"], ["kv-threshold", "kvThreshold"], ["near-best-bytes", "nearBestBytes"],
  ["near-best-percent", "nearBestPercent"], ["affinity-bytes", "affinityBytes"], ["affinity-memory", "affinityMemory"],
  ["affinity-blocks", "affinityBlocks"], ["lora-load-bytes", "loraLoadBytes"], ["lora-full-bytes", "loraFullBytes"],
];

/** A model and its targets; dropped whole if the model record is bad or no target is left. */
function modelBlock(modelName: string, pool: string, criticality: string, targets: Array<{ name: string; weight: number }>, onDropped: DroppedRecord): string[] {
  return record(`model ${modelName}`, onDropped, () => {
    const head = `model ${name(modelName, "model")} ${name(pool, "pool")} ${criticality}`;
    const lines = targets.flatMap((t) => record(`target ${t.name} of model ${modelName}`, onDropped,
      () => [`target ${name(t.name, "target model")} ${integer(t.weight, "weight")}`]));
    if (lines.length === 0) throw new BadField("no target left");
    return [head, ...lines];
  });
}

/**
 * Models are the InferenceModels' modelNames. A target model name that no InferenceModel declares
 * is also accepted as-is (no rewrite), because the pool is known to serve it.
 */
function modelLines(config: RoutingConfig, pools: ReadonlySet<string>, onDropped: DroppedRecord): string[] {
  const lines: string[] = [];
  const declared = new Set(config.models.map((m) => m.modelName));
  const passthrough = new Map<string, string>();
  for (const m of config.models) {
    if (!pools.has(m.pool)) { onDropped(`model ${m.modelName}`, `its pool ${m.pool} is not in the snapshot`); continue; }
    const block = modelBlock(m.modelName, m.pool, m.criticality, m.targets, onDropped);
    lines.push(...block);
    if (block.length === 0) continue;
    for (const t of m.targets) if (!declared.has(t.name) && !passthrough.has(t.name) && SNAPSHOT_NAME.test(t.name)) passthrough.set(t.name, m.pool);
  }
  for (const [model, pool] of passthrough) lines.push(...modelBlock(model, pool, "standard", [{ name: model, weight: 1 }], onDropped));
  return lines;
}

/** InferenceObjectives: `objective <name> <pool> <priority>`, for pools in the snapshot. */
function objectiveLines(config: RoutingConfig, pools: ReadonlySet<string>, onDropped: DroppedRecord): string[] {
  return config.objectives.flatMap((o) => pools.has(o.pool) ? record(`objective ${o.namespace}/${o.resourceName}`, onDropped,
    () => [`objective ${name(o.resourceName, "objective")} ${name(o.pool, "pool")} ${signed(o.priority, "priority")}`]) : []);
}

/**
 * HTTPRoute rules: `route <cluster> <pool> <weight>...` (the pools the filter chooses between, by
 * weight) and `mirror <cluster> <pool>` (a pool the rule mirrors to). Backends whose pool is not in
 * the snapshot are left out of the record; a route left with none is left out with its mirrors.
 */
function routeLines(config: RoutingConfig, pools: ReadonlySet<string>, onDropped: DroppedRecord): string[] {
  return config.routes.flatMap((r) => record(`route ${r.cluster}`, onDropped, () => {
    const backends = r.backends.filter((b) => pools.has(b.pool) && b.weight > 0);
    if (backends.length === 0) throw new BadField("no pool of the route is in the snapshot");
    const head = `route ${name(r.cluster, "route")} ${backends.map((b) => `${name(b.pool, "pool")} ${integer(b.weight, "weight")}`).join(" ")}`;
    const mirrors = r.mirrors.filter((m) => pools.has(m.pool)).map((m) => `mirror ${r.cluster} ${name(m.pool, "pool")}`);
    return [head, ...mirrors];
  }));
}

/**
 * The live part of the snapshot: every pool's endpoints (scores, queue, KV, adapters) and
 * saturation. The filter puts it in place of those records of the snapshot it has
 * (`renderSnapshot(config, version)` + `renderLoad(config, schedule)` routes as
 * `renderSnapshot(config, version, schedule)` does).
 */
export function renderLoad(config: RoutingConfig, schedule: Schedule | undefined, onDropped: DroppedRecord = () => undefined): string {
  return [LOAD_FORMAT_HEADER, ...config.pools.flatMap((p) => poolLines(p, schedule?.get(p.id), onDropped)), ""].join("\n");
}

/** The snapshot's `load-channel` record: how the filter reaches the load channel (a serialized
 * envoy.config.core.v3.GrpcService, in hex). */
export function loadChannelRecord(grpcService: Uint8Array): string {
  return `load-channel ${Buffer.from(grpcService).toString("hex")}\n`;
}

/**
 * The routing snapshot. Without a schedule, every endpoint of every pool is routable at a neutral
 * score and no pool is saturated: what the filter uses until a load text arrives.
 */
export function renderSnapshot(config: RoutingConfig, version: number, schedule?: Schedule, onDropped: DroppedRecord = () => undefined): string {
  const pools = config.pools.map((p) => poolLines(p, schedule?.get(p.id), onDropped));
  const written = new Set(config.pools.filter((_, i) => pools[i]!.length > 0).map((p) => p.id));
  return [
    SNAPSHOT_FORMAT_HEADER,
    `version ${integer(version, "version")}`,
    ...TUNING_KEYS.flatMap(([key, field]) => record(`tuning ${key}`, onDropped, () => [`tuning ${key} ${integer(config.scheduler.picker[field], key)}`])),
    ...pools.flat(),
    // The pools an endpoint picker routes: the filter follows their requests to the endpoint that
    // served them (configuration, not load: the load text never carries it).
    ...config.pools.filter((p) => p.picker && written.has(p.id)).map((p) => `picker ${p.id}`),
    ...modelLines(config, written, onDropped),
    ...objectiveLines(config, written, onDropped),
    ...routeLines(config, written, onDropped),
    "",
  ].join("\n");
}
