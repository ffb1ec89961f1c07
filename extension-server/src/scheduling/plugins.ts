// Endpoint scoring in the manner of the Inference Extension's scheduler: a filter drops endpoints
// that cannot serve, scorers rate the rest in [0, 1], and a weighted sum becomes the score the
// filter in Envoy picks with (together with what it knows locally). Each plugin is small, pure and
// independent; the weights come from the configuration.
import type { SchedulerConfig } from "./config.ts";

/** What a model server reported about its load (load/engine-metrics.ts reads it from /metrics). */
export interface EndpointLoad {
  waiting: number;
  running: number;
  /** KV-cache use, 0–1. */
  kvUsage: number;
  runningLoras: string[];
  waitingLoras: string[];
  maxLoras: number;
  /** Which of `waiting` and `kvUsage` the server really reported (a missing metric reads as 0
   * above); absent: both were. */
  reported?: { waiting: boolean; kv: boolean } | undefined;
}

/** What the scraper knows about one endpoint (load/scraper.ts keeps one per endpoint). */
export interface Reading {
  /** The last successful reading; undefined until the first one. */
  load?: EndpointLoad | undefined;
  /** When the last scrape succeeded (same clock as `now`); -Infinity if none has. */
  lastSuccess: number;
  /** Scrapes failed since the last success (0 while none has been tried). */
  consecutiveFailures: number;
}

export interface Candidate {
  address: string;
  load: EndpointLoad;
  /** Fresh metrics. */
  ready: boolean;
  /** Not scraped yet (just added): unknown, not failing. */
  unscraped: boolean;
}

export interface FilterPlugin { name: string; filter(candidates: Candidate[]): Candidate[] }
/** Rates every candidate in [0, 1], 1 best. */
export interface ScorerPlugin { name: string; score(candidates: Candidate[]): number[] }

/** Fresh: the last scrape succeeded, and not longer than `staleAfterMs` ago. A failed scrape
 * counts at once (a dead replica refuses connections in microseconds). */
export function isFresh(reading: Reading | undefined, now: number, staleAfterMs: number): boolean {
  return reading?.load !== undefined && reading.consecutiveFailures === 0 && now - reading.lastSuccess <= staleAfterMs;
}

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

/** Fewer waiting requests is better, relative to the other candidates. */
export const queueScorer: ScorerPlugin = { name: "queue", score: (c) => minMaxInverse(c.map((x) => x.load.waiting)) };
/** More free KV cache is better, absolutely: 1 − use. */
export const kvCacheScorer: ScorerPlugin = { name: "kv-cache", score: (c) => c.map((x) => 1 - x.load.kvUsage) };
/** Fewer running requests is better, relative to the other candidates. */
export const runningScorer: ScorerPlugin = { name: "running", score: (c) => minMaxInverse(c.map((x) => x.load.running)) };

export interface WeightedScorer { plugin: ScorerPlugin; weight: number }

export function weightedScorers(weights: SchedulerConfig["scorers"]): WeightedScorer[] {
  return [
    { plugin: queueScorer, weight: weights.queue },
    { plugin: kvCacheScorer, weight: weights.kvCache },
    { plugin: runningScorer, weight: weights.running },
  ];
}

/** Weighted sum of the scorers, scaled to 0–1000 (the snapshot's integer scores). */
export function scoreCandidates(candidates: Candidate[], scorers: WeightedScorer[]): number[] {
  const total = scorers.reduce((n, s) => n + s.weight, 0);
  if (total === 0 || candidates.length === 0) return candidates.map(() => 1000);
  const sums = candidates.map(() => 0);
  for (const { plugin, weight } of scorers) {
    if (weight === 0) continue;
    plugin.score(candidates).forEach((s, i) => { sums[i]! += weight * s; });
  }
  return sums.map((s) => Math.round((1000 * s) / total));
}

/** Saturation figures are capped here (1 already means saturated). */
const MAX_SATURATION = 1000;

/** The Inference Extension's saturation: mean over endpoints of max(queue / queueThreshold,
 * kv / kvThreshold), an endpoint without fresh metrics counting as saturated (1) unless it has
 * not been scraped yet (0). A pool with no endpoint is saturated. */
export function poolSaturation(candidates: Candidate[], thresholds: SchedulerConfig["saturation"]): number {
  if (candidates.length === 0) return 1;
  const per = candidates.map((c) => (c.ready
    ? Math.max(c.load.waiting / thresholds.queueThreshold, c.load.kvUsage / thresholds.kvThreshold)
    : c.unscraped ? 0 : 1));
  return Math.min(MAX_SATURATION, per.reduce((a, b) => a + b, 0) / per.length);
}
