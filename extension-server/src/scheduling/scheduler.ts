// Turns the scraper's readings into the LoadView the snapshot is rendered from: per pool, the
// ready filter, the weighted scorers and the saturation figure.
import type { RoutingConfig } from "../config/routing-config.ts";
import type { Scraper } from "../load/scraper.ts";
import { endpointAddress, type EndpointView, type LoadView } from "../snapshot.ts";
import { poolSaturation, readyFilter, scoreCandidates, scorers, type Candidate } from "./plugins.ts";

/** Scores move in steps of this much, so noise in the metrics does not cause a push. */
const SCORE_STEP = 10;
const IDLE = { engine: "unknown" as const, waiting: 0, running: 0, kvUsage: 0, runningLoras: [], waitingLoras: [], maxLoras: 0 };

export function computeLoadView(config: RoutingConfig, scraper: Scraper, now = performance.now()): LoadView {
  const endpoints = new Map<string, EndpointView>();
  const saturation = new Map<string, number>();
  const plugins = scorers(config.scheduler);
  for (const pool of config.pools) {
    const candidates: Candidate[] = pool.endpoints.map((e) => {
      const address = endpointAddress(e);
      const reading = scraper.reading(address);
      const unscraped = reading === undefined || (reading.load === undefined && reading.consecutiveFailures === 0);
      return { address, load: reading?.load ?? IDLE, ready: scraper.isReady(address, now), unscraped };
    });
    saturation.set(pool.name, Math.round(poolSaturation(candidates, config.scheduler) * 100) / 100);
    const routable = readyFilter.filter(candidates);
    const scores = scoreCandidates(routable, plugins);
    routable.forEach((c, i) => {
      const loras = [...new Set([...c.load.runningLoras, ...c.load.waitingLoras])];
      endpoints.set(c.address, {
        score: Math.round(scores[i]! / SCORE_STEP) * SCORE_STEP,
        ...(c.load.maxLoras > 0 ? { loras, loraFree: c.load.runningLoras.length < c.load.maxLoras } : {}),
      });
    });
  }
  return { endpoint: (a) => endpoints.get(a), saturation: (p) => saturation.get(p) ?? 0 };
}
