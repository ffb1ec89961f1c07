// The scheduler: a pure function from each pool's endpoints and what was last read from them to
// the scores and saturation the snapshot carries. Per pool: the ready filter, the weighted scorers
// and the saturation figure (README.md in this folder names the whole pipeline). No timers, no I/O:
// the load loop (load-loop.ts) calls it after scrapes; a simulation can call it in virtual time.
import type { SchedulerConfig } from "./config.ts";
import { isFresh, poolSaturation, readyFilter, scoreCandidates, weightedScorers, type Candidate, type EndpointLoad, type Reading } from "./plugins.ts";

/** Scores move in steps of this much, so noise in the metrics does not cause a push. */
const SCORE_STEP = 10;
const IDLE: EndpointLoad = { waiting: 0, running: 0, kvUsage: 0, runningLoras: [], waitingLoras: [], maxLoras: 0 };

/** A pool and the addresses (`ip:port`) of its endpoints. */
export interface PoolMembers { pool: string; endpoints: readonly string[] }

/** The settings scheduling reads. */
export type SchedulingSettings = Pick<SchedulerConfig, "scorers" | "saturation"> & { scrape: Pick<SchedulerConfig["scrape"], "staleAfterMs"> };

export interface EndpointScore {
  /** Its metrics are fresh. */
  ready: boolean;
  /** 0–1000, higher is better; undefined when the ready filter dropped it (not routable). */
  score?: number | undefined;
  /** LoRA adapters running or waiting there, and whether a slot is free (when it reports LoRA). */
  loras?: string[];
  loraFree?: boolean;
  /** The engine's waiting requests, as last scraped: only from a fresh reading that reported it
   * (the filter then costs the endpoint by it; without it, by the score). */
  waiting?: number;
  /** Its KV-cache use in thousandths (0–1000), on the same terms. */
  kvPermille?: number;
}

export interface PoolSchedule {
  /** 1 = saturated (Sheddable requests are shed). */
  saturation: number;
  /** By endpoint address, every endpoint of the pool. */
  endpoints: ReadonlyMap<string, EndpointScore>;
}

/** By pool name. */
export type Schedule = ReadonlyMap<string, PoolSchedule>;

/** The most waiting requests rendered (the filter refuses more: MAX_WAITING in filter/src/core/snapshot.ts). */
export const MAX_WAITING = 1_000_000;

/** The raw engine readings the filter costs by, from a fresh reading only: a stale one (or one
 * the ready filter kept only because nothing was fresh) renders none, so the filter falls back to
 * the score and its own counts. */
function engineFields(c: Candidate): Pick<EndpointScore, "waiting" | "kvPermille"> {
  if (!c.ready) return {};
  const reported = c.load.reported ?? { waiting: true, kv: true };
  const out: Pick<EndpointScore, "waiting" | "kvPermille"> = {};
  if (reported.waiting && Number.isFinite(c.load.waiting)) out.waiting = Math.min(MAX_WAITING, Math.max(0, Math.round(c.load.waiting)));
  if (reported.kv && Number.isFinite(c.load.kvUsage)) out.kvPermille = Math.min(1000, Math.max(0, Math.round(c.load.kvUsage * 1000)));
  return out;
}

export function schedule(pools: readonly PoolMembers[], readings: ReadonlyMap<string, Reading>, now: number, settings: SchedulingSettings): Schedule {
  const scorers = weightedScorers(settings.scorers);
  const out = new Map<string, PoolSchedule>();
  for (const { pool, endpoints } of pools) {
    const candidates: Candidate[] = endpoints.map((address) => {
      const reading = readings.get(address);
      const unscraped = reading === undefined || (reading.load === undefined && reading.consecutiveFailures === 0);
      return { address, load: reading?.load ?? IDLE, ready: isFresh(reading, now, settings.scrape.staleAfterMs), unscraped };
    });
    const scores = new Map<string, EndpointScore>(candidates.map((c) => [c.address, { ready: c.ready }]));
    const routable = readyFilter.filter(candidates);
    scoreCandidates(routable, scorers).forEach((score, i) => {
      const c = routable[i]!;
      const loras = [...new Set([...c.load.runningLoras, ...c.load.waitingLoras])];
      scores.set(c.address, {
        ready: c.ready,
        score: Math.round(score / SCORE_STEP) * SCORE_STEP,
        ...(c.load.maxLoras > 0 ? { loras, loraFree: c.load.runningLoras.length < c.load.maxLoras } : {}),
        ...engineFields(c),
      });
    });
    out.set(pool, { saturation: Math.round(poolSaturation(candidates, settings.saturation) * 100) / 100, endpoints: scores });
  }
  return out;
}
