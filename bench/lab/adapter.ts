// The policy lab's one door into the extension server. Everything the lab takes from
// extension-server/ comes through this file, so when the server's files move (the scheduler is
// becoming a pure function of pools, readings, time and settings) only this file changes.
//
// What it takes, unchanged: the scheduling plugins (ready filter, scorers, weighted sum, pool
// saturation), the default scheduler settings and the snapshot renderer. What it composes the way
// extension-server/src/scheduling/scheduler.ts composes them today (computeLoadView reads a live
// Scraper, so it is mirrored here on plain readings): readiness, saturation rounded to 0.01 and
// scores quantised to steps of 10.
import { DEFAULT_SCHEDULER_CONFIG, type SchedulerConfig } from "../../extension-server/src/scheduling/config.ts";
import { poolSaturation, readyFilter, scoreCandidates, scorers, type Candidate } from "../../extension-server/src/scheduling/plugins.ts";
import { renderSnapshot, type EndpointView, type LoadView } from "../../extension-server/src/snapshot.ts";
import type { RoutingConfig } from "../../extension-server/src/config/routing-config.ts";
import type { EngineLoad } from "../../extension-server/src/load/engine-metrics.ts";

export { DEFAULT_SCHEDULER_CONFIG };
export type { EngineLoad, SchedulerConfig };

/** scheduler.ts's SCORE_STEP: scores move in steps of this much. */
const SCORE_STEP = 10;

/** What the scraper knows of one endpoint: its last reading and when it arrived. */
export interface Reading {
  address: string;
  load?: EngineLoad;
  /** Model time of the last successful scrape's answer; -Infinity before the first. */
  lastSuccess: number;
}

/** Per endpoint: the pushed score and the raw reading it came from (for the fields the snapshot
 * does not carry yet; see `extraEndpointFields`). */
export interface EndpointScore { address: string; score: number; load: EngineLoad }

export interface PoolView { endpoints: EndpointScore[]; saturation: number }

const IDLE: EngineLoad = { engine: "unknown", waiting: 0, running: 0, kvUsage: 0, runningLoras: [], waitingLoras: [], maxLoras: 0 };

/** The server's view of one pool at `now`: the ready filter, the weighted scorers, saturation. */
export function scorePool(readings: Reading[], config: SchedulerConfig, now: number): PoolView {
  const candidates: Candidate[] = readings.map((r) => ({
    address: r.address,
    load: r.load ?? IDLE,
    ready: r.load !== undefined && now - r.lastSuccess <= config.scrape.staleAfterMs,
    unscraped: r.load === undefined,
  }));
  const saturation = Math.round(poolSaturation(candidates, config) * 100) / 100;
  const routable = readyFilter.filter(candidates);
  const scores = scoreCandidates(routable, scorers(config));
  return {
    saturation,
    endpoints: routable.map((c, i) => ({ address: c.address, score: Math.round(scores[i]! / SCORE_STEP) * SCORE_STEP, load: c.load })),
  };
}

/** The one pool and model the lab routes: the seed's InferencePool and InferenceModel (`qwq`, Critical,
 * one target `qwq-32b`), as bench/run.ts declares them. */
export function labRoutingConfig(addresses: string[], scheduler: SchedulerConfig = DEFAULT_SCHEDULER_CONFIG): RoutingConfig {
  return {
    pools: [{
      name: "reasoning-pool", namespace: "default", apiVersion: "inference.networking.x-k8s.io/v1alpha1",
      selector: { app: "qwq-32b" }, targetPorts: [8000],
      endpoints: addresses.map((a, i) => ({ ip: a.slice(0, a.lastIndexOf(":")), port: Number(a.slice(a.lastIndexOf(":") + 1)), podName: `qwq-32b-${i}` })),
    }],
    models: [{ resourceName: "inferencemodel-sample", namespace: "default", modelName: "qwq", pool: "reasoning-pool", criticality: "critical", targets: [{ name: "qwq-32b", weight: 100 }] }],
    scheduler,
  };
}

/**
 * The snapshot text the server pushes for `view`, by the server's own renderer. `extra`, when
 * given, appends attributes to each endpoint line: the lab's stand-in for fields the server does not
 * render yet (the filter ignores attributes it does not know, so an older filter is unaffected).
 */
export function renderLabSnapshot(config: RoutingConfig, version: number, view: PoolView, extra?: (e: EndpointScore) => string): string {
  const byAddress = new Map(view.endpoints.map((e) => [e.address, e]));
  const load: LoadView = {
    endpoint: (a): EndpointView | undefined => {
      const e = byAddress.get(a);
      if (e === undefined) return undefined;
      // As computeLoadView: LoRA adapters and a free slot, for an engine that reports max_lora.
      const l = e.load;
      return l.maxLoras > 0 ? { score: e.score, loras: [...new Set([...l.runningLoras, ...l.waitingLoras])], loraFree: l.runningLoras.length < l.maxLoras } : { score: e.score };
    },
    saturation: () => view.saturation,
  };
  const text = renderSnapshot(config, version, load);
  if (!extra) return text;
  return text.split("\n").map((line) => {
    if (!line.startsWith("endpoint ")) return line;
    const e = byAddress.get(line.split(" ")[1]!);
    const more = e ? extra(e) : "";
    return more ? `${line} ${more}` : line;
  }).join("\n");
}
