// Renders the routing snapshot the filter decodes (format documented in filter/src/core/snapshot.ts).
import type { PoolConfig, RoutingConfig } from "./config/routing-config.ts";

export const SNAPSHOT_HEADER = "infergate-snapshot 1";
/** Score of an endpoint with no load data yet: every endpoint ties, so the filter spreads at random. */
export const NEUTRAL_SCORE = 1000;

export function endpointAddress(e: { ip: string; port: number }): string {
  return e.ip.includes(":") ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`;
}

/** What the scheduler made of an endpoint; undefined leaves it out of the snapshot (not routable). */
export interface EndpointView {
  score: number;
  /** LoRA adapters running or waiting there, and whether a slot is free. */
  loras?: string[];
  loraFree?: boolean;
}

export interface LoadView {
  endpoint(address: string): EndpointView | undefined;
  /** Pool saturation (1 = saturated). */
  saturation(pool: string): number;
}

/** Before any metrics: every endpoint routable with the same score, nothing saturated. */
export const NEUTRAL_LOAD: LoadView = { endpoint: () => ({ score: NEUTRAL_SCORE }), saturation: () => 0 };

function endpointLine(address: string, view: EndpointView): string {
  let line = `endpoint ${address} ${Math.max(0, Math.min(1000, Math.round(view.score)))}`;
  if (view.loras && view.loras.length > 0) line += ` loras=${view.loras.join(",")}`;
  if (view.loraFree !== undefined) line += ` lora-free=${view.loraFree ? 1 : 0}`;
  return line;
}

function poolLines(pool: PoolConfig, load: LoadView): string[] {
  const lines = [`pool ${pool.name}`];
  for (const e of pool.endpoints) {
    const address = endpointAddress(e);
    const view = load.endpoint(address);
    if (view) lines.push(endpointLine(address, view));
  }
  lines.push(`saturation ${pool.name} ${Math.max(0, Math.round(load.saturation(pool.name) * 1000))}`);
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

export function renderSnapshot(config: RoutingConfig, version: number, load: LoadView = NEUTRAL_LOAD): string {
  return [
    SNAPSHOT_HEADER,
    `version ${version}`,
    ...TUNING_KEYS.map(([key, field]) => `tuning ${key} ${config.scheduler.picker[field]}`),
    ...config.pools.flatMap((p) => poolLines(p, load)),
    ...modelLines(config),
    "",
  ].join("\n");
}
