// Renders the routing snapshot the filter decodes (format documented in filter/src/core/snapshot.ts)
// from the configuration and the scheduler's latest schedule.
import type { PoolConfig, RoutingConfig } from "./config/routing-config.ts";
import { SNAPSHOT_FORMAT_HEADER } from "./contract.ts";
import type { EndpointScore, PoolSchedule, Schedule } from "./scheduling/scheduler.ts";

/** Score of an endpoint with no schedule yet: every endpoint ties, so the filter spreads at random. */
const NEUTRAL_SCORE = 1000;

export function endpointAddress(e: { ip: string; port: number }): string {
  return e.ip.includes(":") ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`;
}

function endpointLine(address: string, e: EndpointScore & { score: number }): string {
  let line = `endpoint ${address} ${Math.max(0, Math.min(1000, Math.round(e.score)))}`;
  if (e.loras && e.loras.length > 0) line += ` loras=${e.loras.join(",")}`;
  if (e.loraFree !== undefined) line += ` lora-free=${e.loraFree ? 1 : 0}`;
  return line;
}

/** The pool and its routable endpoints. Without a schedule every endpoint is routable, neutral. */
function poolLines(pool: PoolConfig, scheduled: PoolSchedule | undefined): string[] {
  const lines = [`pool ${pool.name}`];
  for (const e of pool.endpoints) {
    const address = endpointAddress(e);
    const s = scheduled ? scheduled.endpoints.get(address) : { ready: true, score: NEUTRAL_SCORE };
    if (s?.score !== undefined) lines.push(endpointLine(address, { ...s, score: s.score }));
  }
  lines.push(`saturation ${pool.name} ${Math.max(0, Math.round((scheduled?.saturation ?? 0) * 1000))}`);
  return lines;
}

const TUNING_KEYS: Array<[string, keyof RoutingConfig["scheduler"]["picker"]]> = [
  ["score-weight", "scoreWeight"], ["inflight-weight", "inflightWeight"], ["near-best-bytes", "nearBestBytes"],
  ["near-best-percent", "nearBestPercent"], ["affinity-bound-bytes", "affinityBoundBytes"], ["affinity-blocks", "affinityBlocks"],
  ["lora-load-bytes", "loraLoadBytes"], ["lora-full-bytes", "loraFullBytes"],
];

/**
 * Models are the InferenceModels' modelNames. A target model name that no InferenceModel declares
 * is also accepted as-is (no rewrite), because the pool is known to serve it.
 */
function modelLines(config: RoutingConfig): string[] {
  const lines: string[] = [];
  const declared = new Set(config.models.map((m) => m.modelName));
  const passthrough = new Map<string, string>();
  for (const m of config.models) {
    lines.push(`model ${m.modelName} ${m.pool} ${m.criticality}`);
    for (const t of m.targets) {
      lines.push(`target ${t.name} ${t.weight}`);
      if (!declared.has(t.name) && !passthrough.has(t.name)) passthrough.set(t.name, m.pool);
    }
  }
  for (const [name, pool] of passthrough) lines.push(`model ${name} ${pool} standard`, `target ${name} 1`);
  return lines;
}

export function renderSnapshot(config: RoutingConfig, version: number, schedule?: Schedule): string {
  return [
    SNAPSHOT_FORMAT_HEADER,
    `version ${version}`,
    ...TUNING_KEYS.map(([key, field]) => `tuning ${key} ${config.scheduler.picker[field]}`),
    ...config.pools.flatMap((p) => poolLines(p, schedule?.get(p.name))),
    ...modelLines(config),
    "",
  ].join("\n");
}
