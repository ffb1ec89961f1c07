// infergate's control path in virtual time: the extension server scrapes every endpoint every
// `scrapeIntervalMs` (each endpoint on its own timer, so on its own phase), and after every reading
// scores the pool with the server's own plugins (through adapter.ts) and hands the result to the
// publisher. The publisher (as extension-server/src/publisher.ts does) pushes only when the
// rendered snapshot changed, at most once per `pushMinIntervalMs`, later changes coalescing into
// one trailing push. Each push reaches every Envoy worker `pushDelayMs` later.
import { DEFAULT_SCHEDULER_CONFIG, labRoutingConfig, renderLabSnapshot, scheduleKey, scheduleLab, type Reading, type SchedulerConfig } from "./adapter.ts";
import { engineLoad, type ControlTiming, type Lab } from "./lab.ts";
import { seededRandom } from "../workload.ts";

/** Per-endpoint readings, refreshed by a scrape loop per endpoint. */
export class Scraper {
  readonly readings: Reading[];
  constructor(lab: Lab, timing: ControlTiming, seed: number, onReading?: (endpoint: number) => void) {
    const random = seededRandom(seed);
    this.readings = lab.addresses.map((address) => ({ address, lastSuccess: -Infinity, consecutiveFailures: 0 }));
    lab.engines.forEach((engine, i) => {
      const phase = random() * timing.scrapeIntervalMs;
      lab.every(timing.scrapeIntervalMs, phase, () => {
        lab.clock.after(timing.scrapeLatencyMs, () => {
          const r = this.readings[i]!;
          r.load = engineLoad(engine);
          r.lastSuccess = lab.clock.now();
          onReading?.(i);
        });
      });
    });
  }
}

export interface ServerOptions {
  scheduler?: SchedulerConfig;
  /** Render the engine fields (`waiting=`, `kv=`) as the server does; false: a server from before
   * them (scores only). Default true. */
  engineFields?: boolean;
  /** Round `kv=` to steps of this many thousandths (fewer pushes); 1: exact, as the server renders. */
  kvStep?: number;
  /** Extra `tuning <key> <value>` lines after the server's own (a lab-only sweep of filter keys the
   * server does not send). */
  tuning?: Record<string, number>;
}

/** The extension server: scrape, score, publish. `deliver` gets every pushed snapshot text when it
 * reaches the Envoys. */
export class ExtensionServer {
  pushes = 0;
  private lastBody = "";
  private lastPushAt = -Infinity;
  private trailing = false;
  private version = 0;
  private readonly config;
  private readonly scheduler: SchedulerConfig;
  readonly scraper: Scraper;

  constructor(private readonly lab: Lab, private readonly timing: ControlTiming, seed: number, private readonly deliver: (text: string) => void, private readonly opts: ServerOptions = {}) {
    this.scheduler = opts.scheduler ?? DEFAULT_SCHEDULER_CONFIG;
    this.scheduler = { ...this.scheduler, scrape: { ...this.scheduler.scrape, intervalMs: timing.scrapeIntervalMs, staleAfterMs: timing.staleAfterMs }, push: { minIntervalMs: timing.pushMinIntervalMs } };
    this.config = labRoutingConfig(lab.addresses, this.scheduler);
    // The configuration's first push, before any reading: every endpoint neutral.
    this.push();
    this.scraper = new Scraper(lab, timing, seed ^ 0x5c7a9e, () => this.setLoad());
  }

  /** publisher.ts's setLoad: push now if the last push is old enough, else once, when it is. */
  private setLoad(): void {
    if (this.trailing) return;
    const wait = this.lastPushAt + this.timing.pushMinIntervalMs - this.lab.clock.now();
    if (wait <= 0) { this.push(); return; }
    this.trailing = true;
    this.lab.clock.after(wait, () => { this.trailing = false; this.push(); });
  }

  private push(): void {
    const readings = this.scraper?.readings ?? this.lab.addresses.map((address) => ({ address, lastSuccess: -Infinity, consecutiveFailures: 0 }));
    const view = scheduleLab(readings, this.scheduler, this.lab.clock.now(), this.opts.engineFields ?? true, this.opts.kvStep ?? 1);
    // The rendered text depends on nothing else, so comparing this key is comparing the text the
    // publisher compares, without rendering it after every reading.
    const key = scheduleKey(view);
    if (key === this.lastBody) return;
    this.lastBody = key;
    this.version++;
    this.pushes++;
    this.lastPushAt = this.lab.clock.now();
    let text = renderLabSnapshot(this.config, this.version, view);
    if (this.opts.tuning) {
      // After the server's own tuning records: the filter keeps the last value of a key.
      const lines = Object.entries(this.opts.tuning).map(([k, v]) => `tuning ${k} ${v}`).join("\n");
      const at = text.indexOf("\npool ");
      text = `${text.slice(0, at)}\n${lines}${text.slice(at)}`;
    }
    this.lab.clock.after(this.timing.pushDelayMs, () => this.deliver(text));
  }
}
