// The load loop: scrape → score → publish. The scraper reads every endpoint's /metrics; after
// each turn of the event loop in which scrapes completed, the scheduler (a pure function) turns
// the readings into scores and saturation, and the publisher pushes them to Envoy when the
// snapshot changes (at most once per push.minIntervalMs). `refresh` is where a score becomes a push.
import type { RoutingConfig } from "./config/routing-config.ts";
import { Scraper } from "./load/scraper.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { Publisher } from "./publisher.ts";
import { schedule, type Schedule } from "./scheduling/scheduler.ts";
import { endpointAddress } from "./snapshot.ts";

export class LoadLoop {
  private config?: RoutingConfig;
  private scraper?: Scraper;
  private scrapeSettings = "";
  private refreshQueued = false;

  constructor(private readonly publisher: Publisher, private readonly metrics: ServerMetrics) {}

  /** Scrapes the configuration's endpoints from now on, and publishes the configuration at once. */
  setConfig(config: RoutingConfig): void {
    this.config = config;
    const { intervalMs, timeoutMs } = config.scheduler.scrape;
    const settings = JSON.stringify({ intervalMs, timeoutMs });
    if (!this.scraper || settings !== this.scrapeSettings) {
      this.scraper?.stop();
      this.scraper = new Scraper({ intervalMs, timeoutMs }, () => this.queueRefresh());
      this.scrapeSettings = settings;
    }
    this.scraper.setEndpoints(config.pools.flatMap((p) => p.endpoints.map(endpointAddress)));
    this.publisher.setConfig(config, this.schedule(config, this.scraper));
  }

  stop(): void {
    this.scraper?.stop();
    this.scraper = undefined;
  }

  /** Scrapes complete one endpoint at a time; recompute once per turn of the event loop. */
  private queueRefresh(): void {
    if (this.refreshQueued) return;
    this.refreshQueued = true;
    setImmediate(() => {
      this.refreshQueued = false;
      this.refresh();
    });
  }

  private refresh(): void {
    if (!this.config || !this.scraper) return;
    this.publisher.setSchedule(this.schedule(this.config, this.scraper));
  }

  private schedule(config: RoutingConfig, scraper: Scraper): Schedule {
    const readings = scraper.readings();
    const pools = config.pools.map((p) => ({ pool: p.id, endpoints: p.endpoints.map(endpointAddress) }));
    const result = schedule(pools, readings, performance.now(), config.scheduler);
    this.metrics.recordSchedule(config, result, readings);
    return result;
  }
}
