// The policy lab's one door into the extension server. Everything the lab takes from
// extension-server/ comes through this file, so when the server's files move only this file changes.
//
// What it takes, unchanged: the scheduler (scheduling/scheduler.ts: a pure function of the pools,
// the readings, the time and the settings: ready filter, weighted scorers, saturation, and the
// engine fields `waiting`/`kv` from fresh readings), the default settings and the snapshot renderer.
import { DEFAULT_SCHEDULER_CONFIG, type SchedulerConfig } from "../../extension-server/src/scheduling/config.ts";
import type { Reading as ServerReading } from "../../extension-server/src/scheduling/plugins.ts";
import { schedule, type Schedule } from "../../extension-server/src/scheduling/scheduler.ts";
import { renderSnapshot } from "../../extension-server/src/snapshot.ts";
import { poolId, type RoutingConfig } from "../../extension-server/src/config/routing-config.ts";
import type { EngineLoad } from "../../extension-server/src/load/engine-metrics.ts";

export { DEFAULT_SCHEDULER_CONFIG };
export type { EngineLoad, SchedulerConfig, Schedule };

/** What the scraper knows of one endpoint: its last reading and when it arrived. */
export interface Reading extends ServerReading {
  address: string;
  load?: EngineLoad | undefined;
}

const POOL = poolId("default", "reasoning-pool");

/** The server's schedule of the lab's one pool at `now`. `engineFields: false` drops the
 * `waiting`/`kv` fields (a server from before them: the filter's score fallback); `kvStep` rounds
 * `kv` to steps of that many thousandths. */
export function scheduleLab(readings: Reading[], config: SchedulerConfig, now: number, engineFields = true, kvStep = 1): Schedule {
  const out = schedule([{ pool: POOL, endpoints: readings.map((r) => r.address) }], new Map(readings.map((r) => [r.address, r])), now, config);
  for (const view of out.values()) {
    for (const e of view.endpoints.values()) {
      if (!engineFields) { delete e.waiting; delete e.kvPermille; } else if (kvStep > 1 && e.kvPermille !== undefined) e.kvPermille = Math.min(1000, Math.round(e.kvPermille / kvStep) * kvStep);
    }
  }
  return out;
}

/** A key that changes exactly when the rendered snapshot would (saturation and endpoint lines). */
export function scheduleKey(s: Schedule): string {
  let key = "";
  for (const view of s.values()) {
    key += String(view.saturation);
    for (const [a, e] of view.endpoints) key += `|${a} ${e.score ?? "-"} ${e.waiting ?? "-"} ${e.kvPermille ?? "-"}`;
  }
  return key;
}

/** The one pool and model the lab routes: the seed's InferencePool and InferenceModel (`qwq`, Critical,
 * one target `qwq-32b`), as bench/run.ts declares them. */
export function labRoutingConfig(addresses: string[], scheduler: SchedulerConfig = DEFAULT_SCHEDULER_CONFIG): RoutingConfig {
  return {
    pools: [{
      id: POOL, name: "reasoning-pool", namespace: "default", apiVersion: "inference.networking.x-k8s.io/v1alpha1",
      selector: { app: "qwq-32b" }, targetPorts: [8000], skipped: {},
      endpoints: addresses.map((a, i) => ({ ip: a.slice(0, a.lastIndexOf(":")), port: Number(a.slice(a.lastIndexOf(":") + 1)), podName: `qwq-32b-${i}` })),
    }],
    models: [{ resourceName: "inferencemodel-sample", namespace: "default", modelName: "qwq", pool: POOL, criticality: "critical", targets: [{ name: "qwq-32b", weight: 100 }] }],
    objectives: [], routes: [], problems: [],
    scheduler,
  };
}

/** The snapshot text the server pushes for `s`, by the server's own renderer. */
export function renderLabSnapshot(config: RoutingConfig, version: number, s: Schedule): string {
  return renderSnapshot(config, version, s);
}
