// Scrapes every endpoint's /metrics on a short interval and keeps, per endpoint, the last load
// reading, when it succeeded and how many scrapes failed since. Whether that makes the endpoint
// ready is the scheduler's decision (scheduling/plugins.ts `isFresh`).
//
// A replica's output is untrusted, and the event loop that scrapes also serves xDS, the hooks and
// /healthz: a body larger than MAX_BODY_BYTES is cut off and the scrape fails, a scrape takes at
// most timeoutMs, an endpoint that keeps failing is retried with a growing delay (up to
// MAX_BACKOFF_MS), and an endpoint whose output takes long to parse is scraped no more often than
// COST_FACTOR times that parse time, so no endpoint takes more than about 1/COST_FACTOR of the
// event loop. A slow or hostile replica costs only its own readings.
import { Pool, type Dispatcher } from "undici";
import type { Reading } from "../scheduling/plugins.ts";
import { parseEngineLoad, type EngineLoad } from "./engine-metrics.ts";

const MAX_BODY_BYTES = 4 * 1024 * 1024;
const MAX_BACKOFF_MS = 1000;
const COST_FACTOR = 20;

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
  /** Scrapes finished since the endpoint was added, and how many of them failed. */
  scrapes: number;
  failures: number;
}

class EndpointScraper {
  readonly reading: EndpointReading;
  private readonly pool: Pool;
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(address: string, private readonly opts: ScrapeOptions, private readonly onReading: () => void) {
    this.reading = { address, lastSuccess: -Infinity, consecutiveFailures: 0, scrapes: 0, failures: 0 };
    this.pool = new Pool(`http://${address}`, { connections: 1, keepAliveTimeout: 10_000, headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs });
    this.schedule(0);
  }

  private schedule(delay: number): void {
    if (!this.stopped) this.timer = setTimeout(() => void this.scrape(), delay);
  }

  private async scrape(): Promise<void> {
    const started = performance.now();
    let parseMs = 0;
    try {
      const res = await this.pool.request({ path: "/metrics", method: "GET", signal: AbortSignal.timeout(this.opts.timeoutMs) });
      if (res.statusCode !== 200) {
        await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
        throw new Error(`HTTP ${res.statusCode}`);
      }
      const text = await readCapped(res.body, MAX_BODY_BYTES);
      const parseStarted = performance.now();
      this.reading.load = parseEngineLoad(text);
      parseMs = performance.now() - parseStarted;
      this.reading.lastSuccess = performance.now();
      this.reading.consecutiveFailures = 0;
      delete this.reading.lastError;
    } catch (err) {
      this.reading.consecutiveFailures++;
      this.reading.failures++;
      this.reading.lastError = (err as Error).message;
    }
    this.reading.scrapes++;
    if (this.stopped) return;
    this.onReading();
    // Failing: 1, 2, 4... intervals, up to MAX_BACKOFF_MS (or the interval, if longer).
    const failures = this.reading.consecutiveFailures;
    const period = failures === 0 ? this.opts.intervalMs : Math.min(this.opts.intervalMs * 2 ** (failures - 1), Math.max(MAX_BACKOFF_MS, this.opts.intervalMs));
    this.schedule(Math.max(0, period - (performance.now() - started), COST_FACTOR * parseMs));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    void this.pool.destroy();
  }
}

/** The body as text, or an error once it is larger than `limit` bytes (leaving the loop early
 * destroys the stream: the rest is not read). */
async function readCapped(body: Dispatcher.ResponseData["body"], limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new Error(`body larger than ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
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
