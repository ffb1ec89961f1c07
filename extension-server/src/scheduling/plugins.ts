// Endpoint scoring in the manner of the Inference Extension's scheduler: filters drop endpoints
// that cannot serve, scorers rate the rest in [0, 1], and a weighted sum becomes the score the
// filter in Envoy picks with (together with what it knows locally). Each plugin is small and
// independent; the weights come from the configuration.
import type { EngineLoad } from "../load/engine-metrics.ts";
import type { SchedulerConfig } from "./config.ts";

export interface Candidate {
  address: string;
  load: EngineLoad;
  /** Fresh metrics. */
  ready: boolean;
  /** Not scraped yet (just added): unknown, not failing. */
  unscraped?: boolean;
}

export interface FilterPlugin { name: string; filter(candidates: Candidate[]): Candidate[] }
export interface ScorerPlugin { name: string; weight: number; score(candidates: Candidate[]): number[] }

/** Drops endpoints whose metrics are failing or stale. If none is left, keeps them all: a broken
 * scrape path must not take the whole pool down (the filter still balances with its own counts). */
export const readyFilter: FilterPlugin = {
  name: "ready",
  filter: (candidates) => {
    const ready = candidates.filter((c) => c.ready);
    return ready.length > 0 ? ready : candidates;
  },
};

/** (max − x) / (max − min): 1 for the least loaded, 0 for the most; all 1 when equal. */
function minMaxInverse(values: number[]): number[] {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return values.map((v) => (hi === lo ? 1 : (hi - v) / (hi - lo)));
}

export function scorers(config: SchedulerConfig): ScorerPlugin[] {
  return [
    { name: "queue", weight: config.scorers.queue, score: (c) => minMaxInverse(c.map((x) => x.load.waiting)) },
    { name: "kv-cache", weight: config.scorers.kvCache, score: (c) => c.map((x) => 1 - x.load.kvUsage) },
    { name: "running", weight: config.scorers.running, score: (c) => minMaxInverse(c.map((x) => x.load.running)) },
  ];
}

/** Weighted sum of the scorers, scaled to 0–1000 (the snapshot's integer scores). */
export function scoreCandidates(candidates: Candidate[], plugins: ScorerPlugin[]): number[] {
  const total = plugins.reduce((n, p) => n + p.weight, 0);
  if (total === 0 || candidates.length === 0) return candidates.map(() => 1000);
  const sums = candidates.map(() => 0);
  for (const p of plugins) {
    if (p.weight === 0) continue;
    p.score(candidates).forEach((s, i) => { sums[i]! += p.weight * s; });
  }
  return sums.map((s) => Math.round((1000 * s) / total));
}

/** The Inference Extension's saturation: mean over endpoints of max(queue / queueThreshold,
 * kv / kvThreshold), an endpoint without fresh metrics counting as saturated (1). */
export function poolSaturation(candidates: Candidate[], config: SchedulerConfig): number {
  if (candidates.length === 0) return 1;
  const per = candidates.map((c) => (c.ready
    ? Math.max(c.load.waiting / config.saturation.queueThreshold, c.load.kvUsage / config.saturation.kvThreshold)
    : c.unscraped ? 0 : 1));
  return per.reduce((a, b) => a + b, 0) / per.length;
}
