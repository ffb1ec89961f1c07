// Renders the routing snapshot the filter decodes (format documented in filter/src/core/snapshot.ts).
import type { PoolConfig, RoutingConfig } from "./config/routing-config.ts";

export const SNAPSHOT_HEADER = "infergate-snapshot 1";
/** Score of an endpoint with no load data yet: every endpoint ties, so the filter spreads at random. */
export const NEUTRAL_SCORE = 1000;

export function endpointAddress(e: { ip: string; port: number }): string {
  return e.ip.includes(":") ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`;
}

function poolLines(pool: PoolConfig, scoreOf: (address: string) => number): string[] {
  const lines = [`pool ${pool.name}`];
  for (const e of pool.endpoints) {
    const address = endpointAddress(e);
    lines.push(`endpoint ${address} ${Math.max(0, Math.round(scoreOf(address)))}`);
  }
  return lines;
}

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

export function renderSnapshot(config: RoutingConfig, version: number, scoreOf: (address: string) => number = () => NEUTRAL_SCORE): string {
  return [
    SNAPSHOT_HEADER,
    `version ${version}`,
    ...config.pools.flatMap((p) => poolLines(p, scoreOf)),
    ...modelLines(config),
    "",
  ].join("\n");
}
