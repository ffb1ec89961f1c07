// Scrapes every endpoint's /metrics on a short interval and keeps, per endpoint, the last load
// reading, when it succeeded and how many scrapes failed since. Whether that makes the endpoint
// ready is the scheduler's decision (scheduling/plugins.ts `isFresh`).
import { Pool } from "undici";
import type { Reading } from "../scheduling/plugins.ts";
import { parseEngineLoad, type EngineLoad } from "./engine-metrics.ts";

export interface ScrapeOptions {
  intervalMs: number;
  /** A scrape that takes longer fails. */
  timeoutMs: number;
}

export interface EndpointReading extends Reading {
  address: string;
  load?: EngineLoad | undefined;
  /** performance.now() of the last successful scrape. */
  lastSuccess: number;
  lastError?: string;
}

class EndpointScraper {
  readonly reading: EndpointReading;
  private readonly pool: Pool;
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(address: string, private readonly opts: ScrapeOptions, private readonly onReading: () => void) {
    this.reading = { address, lastSuccess: -Infinity, consecutiveFailures: 0 };
    this.pool = new Pool(`http://${address}`, { connections: 1, keepAliveTimeout: 10_000, headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs });
    this.schedule(0);
  }

  private schedule(delay: number): void {
    if (!this.stopped) this.timer = setTimeout(() => void this.scrape(), delay);
  }

  private async scrape(): Promise<void> {
    const started = performance.now();
    try {
      const res = await this.pool.request({ path: "/metrics", method: "GET", signal: AbortSignal.timeout(this.opts.timeoutMs) });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
      this.reading.load = parseEngineLoad(text);
      this.reading.lastSuccess = performance.now();
      this.reading.consecutiveFailures = 0;
      delete this.reading.lastError;
    } catch (err) {
      this.reading.consecutiveFailures++;
      this.reading.lastError = (err as Error).message;
    }
    if (this.stopped) return;
    this.onReading();
    this.schedule(Math.max(0, this.opts.intervalMs - (performance.now() - started)));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    void this.pool.destroy();
  }
}

export class Scraper {
  private readonly scrapers = new Map<string, EndpointScraper>();

  /** `onReading` runs after every scrape, successful or not. */
  constructor(private readonly opts: ScrapeOptions, private readonly onReading: () => void) {}

  /** Starts scraping new endpoints and stops scraping removed ones. */
  setEndpoints(addresses: string[]): void {
    const wanted = new Set(addresses);
    for (const [address, s] of this.scrapers) if (!wanted.has(address)) { s.stop(); this.scrapers.delete(address); }
    for (const address of wanted) if (!this.scrapers.has(address)) this.scrapers.set(address, new EndpointScraper(address, this.opts, this.onReading));
  }

  /** The current reading of every scraped endpoint, by address. */
  readings(): ReadonlyMap<string, Readonly<EndpointReading>> {
    return new Map([...this.scrapers].map(([address, s]) => [address, s.reading]));
  }

  stop(): void {
    for (const s of this.scrapers.values()) s.stop();
    this.scrapers.clear();
  }
}
