// The policy lab: the seed's experiment (or another workload shape) in virtual time, with a routing
// policy in front of simulated vLLM engines (sim/batching-engine.ts, the calibrated profile).
//
// What is modelled, per request: the client sends the body (bench/client.ts's bytes) to one Envoy
// (at random if there are several) and one of its worker threads, at random: the benchmark's
// client opens a connection per request, as the seed's did, and the kernel hands each connection
// to a worker (Envoy's listener uses SO_REUSEPORT). LabOptions.connections models a keep-alive
// pool instead (`npm run bench -- --keep-alive`; bench/client-connections.ts), and
// LabOptions.workerSeed draws the workers apart from the client's other draws, as a new Envoy run
// does (bench/lab/rr-chance.ts). The policy picks an engine; the request reaches
// the engine after the policy's own latency, waits the engine's API-server overhead, is scheduled,
// streams its tokens and finishes; a closed-loop client then sends its next request.
// Each Envoy keeps the counts the infergate filter keeps in shared data (filter/src/stream.ts and
// shared_load.ts): per endpoint, the bytes of bodies routed there that have not had a first response
// byte, and the requests routed there that have not finished; every worker of that Envoy sees them.
// Policies that read engine metrics (infergate's extension server, the Inference Extension's EPP)
// see them through a scrape every 50 ms per endpoint, each endpoint on its own phase; infergate's
// snapshot then goes through the server's scoring and push limits before a worker can use it.
import { BatchingEngine } from "../../sim/batching-engine.ts";
import { VirtualClock } from "../../sim/clock.ts";
import type { EngineRequest } from "../../sim/engine.ts";
import { requestBody, requestMessages } from "../client.ts";
import { summarize, type RequestRecord, type Summary } from "../summary.ts";
import { poissonArrivals, seededRandom, type WorkloadRequest } from "../workload.ts";
import type { EngineLoad } from "./adapter.ts";
import type { Arriving } from "./fork.ts";
import { slowedProfile, type Shape } from "./shapes.ts";

/** The control path's timing, in model time. The real benchmark's replicas run `timeScale` times
 * faster than wall time while the extension server's scrape, push and Envoy's apply run in wall
 * time, so there they are `timeScale` times longer in model time; `controlTiming(timeScale)`
 * reproduces that. */
export interface ControlTiming {
  /** Scrape period per endpoint (the server's and the EPP's `--refresh-metrics-interval`). */
  scrapeIntervalMs: number;
  /** From a scrape's start to its reading being in hand. */
  scrapeLatencyMs: number;
  /** At most one snapshot push per this long (publisher.ts). */
  pushMinIntervalMs: number;
  /** From a push to every worker routing with it (xDS delivery and Envoy's config apply). */
  pushDelayMs: number;
  /** A reading older than this counts as not ready (scraper.ts). */
  staleAfterMs: number;
}

export function controlTiming(timeScale = 1): ControlTiming {
  return { scrapeIntervalMs: 50 * timeScale, scrapeLatencyMs: 2 * timeScale, pushMinIntervalMs: 20 * timeScale, pushDelayMs: 5 * timeScale, staleAfterMs: 500 * timeScale };
}

/** Model time before the first request: the control path has scraped and pushed by then, as in a
 * real run where the server starts well before the client. */
export const WARMUP_MS = 1000;

export interface LabRequest extends WorkloadRequest {
  body: Uint8Array;
  /** The serialized chat messages (what the EPP's prefix index hashes). */
  messagesJson: string;
  /** What the engine is given (one object, so the oracle's forks submit the same request). */
  engineRequest: EngineRequest;
}

export interface LabRecord extends RequestRecord { engine: number; affinity: boolean; predictedTtftMs?: number }

export interface LocalLoad { pending: number; inflight: number }

/** What a policy sees and acts on. */
export interface RouteContext { now: number; proxy: number; worker: number; req: LabRequest; record: LabRecord }

export interface Policy {
  readonly name: string;
  /** Time the policy adds before the request leaves the gateway (an ext_proc round trip, say). */
  readonly decisionLatencyMs: number;
  /** Engine index, or -1 to fail the request (a 503 or a shed). */
  route(ctx: RouteContext): number;
  /** Called once the lab is built, before any request. */
  start?(lab: Lab): void;
  /** Extra figures for the report (pushes, affinity share, prediction error, …). */
  stats?(): Record<string, number>;
}

export type PolicyFactory = (lab: Lab, seed: number) => Policy;

export interface LabOptions {
  shape: Shape;
  seed: number;
  numPrompts?: number;
  /** Worker threads per Envoy (this repository's Envoy runs with --concurrency 2). */
  workers: number;
  timing: ControlTiming;
  /** Absent: each request's worker is an even draw. Present: the client's `count` connections are
   * each pinned to a worker drawn from `seed` (as the kernel's hash does, differently in every
   * Envoy run), and each request takes one of them at random, as bench/client.ts's pool does. */
  connections?: { count: number; seed: number };
  /** Absent: the workers (or connections) requests arrive on are drawn with the client's other
   * draws, the same for every run of a workload seed. Present: drawn from this seed instead, as a
   * new Envoy run's kernel draws them anew (bench/lab/rr-chance.ts). */
  workerSeed?: number;
}

export interface LabResult {
  policy: string;
  shape: string;
  seed: number;
  summary: Summary;
  records: LabRecord[];
  preemptions: number;
  recomputedTokens: number;
  prefixHitRate: number;
  /** Requests routed to each engine. */
  perEngine: number[];
  stats: Record<string, number>;
  wallS: number;
}

const encoder = new TextEncoder();

export function labRequests(shape: Shape, seed: number, numPrompts = shape.numPrompts): LabRequest[] {
  return shape.build(seed, numPrompts).map((r) => ({
    ...r,
    body: encoder.encode(requestBody(r, "qwq")),
    messagesJson: JSON.stringify(requestMessages(r)),
    engineRequest: { id: String(r.index), model: "qwq-32b", promptTokens: r.tokens, maxTokens: r.maxTokens },
  }));
}

/** Engine load as vLLM's /metrics would show it right now (what a scrape reads). */
export function engineLoad(e: BatchingEngine): EngineLoad {
  const s = e.stats();
  return { engine: "vllm", waiting: s.waiting, running: s.running, kvUsage: s.kvUsage, runningLoras: s.runningLoras, waitingLoras: s.waitingLoras, maxLoras: s.maxLoras };
}

export class Lab {
  readonly clock = new VirtualClock();
  readonly engines: BatchingEngine[];
  readonly addresses: string[];
  /** Per Envoy, per engine: this proxy's own counts. */
  readonly local: LocalLoad[][];
  /** Per engine: requests submitted and still in the API-server overhead (the oracle's view). */
  readonly arriving: Arriving[][];
  /** Set once every request has finished: periodic control-path timers stop rescheduling. */
  done = false;
  readonly profiles;

  constructor(readonly options: LabOptions) {
    const shape = options.shape;
    this.profiles = shape.slowdown.map((f) => slowedProfile(f));
    this.engines = this.profiles.map((p) => new BatchingEngine(p, this.clock));
    this.addresses = this.engines.map((_, i) => `10.0.0.${i + 1}:8000`);
    this.local = Array.from({ length: shape.proxies }, () => this.engines.map(() => ({ pending: 0, inflight: 0 })));
    this.arriving = this.engines.map(() => []);
  }

  get proxies(): number { return this.options.shape.proxies; }
  get workers(): number { return this.options.workers; }

  /** Requests of engine `e` still in their overhead at `now`. */
  arrivingAt(e: number, now: number): Arriving[] {
    const list = this.arriving[e]!;
    while (list.length > 0 && list[0]!.entersAt <= now) list.shift();
    return list;
  }

  /** Calls `fn` every `periodMs` from `phaseMs` until the run is done. */
  every(periodMs: number, phaseMs: number, fn: () => void): void {
    const tick = (): void => {
      if (this.done) return;
      fn();
      this.clock.after(periodMs, tick);
    };
    this.clock.at(phaseMs, tick);
  }

  run(policy: Policy, requests: LabRequest[]): Omit<LabResult, "wallS"> {
    const { shape, seed } = this.options;
    policy.start?.(this);
    const clientRandom = seededRandom(0xc11e47 ^ seed);
    const pinned = this.options.connections;
    // Salted, so that a pinning and a worker seed given the same number draw independently.
    const pinRandom = seededRandom(0x9e37 ^ (pinned?.seed ?? 0));
    const workerOfConnection = Array.from({ length: pinned?.count ?? 0 }, () => Math.floor(pinRandom() * this.workers));
    const ownWorkerRandom = this.options.workerSeed === undefined ? undefined : seededRandom(this.options.workerSeed);
    const workerRandom = (): number => {
      // The client's stream is drawn either way, so a worker seed leaves every other draw as it was.
      const fromClient = clientRandom();
      return ownWorkerRandom ? ownWorkerRandom() : fromClient;
    };
    const records: LabRecord[] = [];
    const perEngine = this.engines.map(() => 0);
    const overhead = this.profiles.map((p) => p.requestOverheadMs);
    let next = 0;
    let finished = 0;
    let lastFinish = WARMUP_MS;
    const finish = (record: LabRecord): void => {
      records.push(record);
      lastFinish = this.clock.now();
      if (++finished === requests.length) this.done = true;
    };
    const send = (req: LabRequest): void => {
      const now = this.clock.now();
      const proxy = shape.proxies > 1 ? Math.floor(clientRandom() * shape.proxies) : 0;
      const draw = workerRandom();
      const worker = pinned ? workerOfConnection[Math.floor(draw * pinned.count)]! : Math.floor(draw * this.workers);
      const record: LabRecord = {
        index: req.index, ok: false, shed: false, status: 0, startMs: now - WARMUP_MS, ttftMs: 0, itlMs: [], e2eMs: 0,
        inputTokens: req.tokens.length, outputTokens: 0, engine: -1, affinity: false,
      };
      const e = policy.route({ now, proxy, worker, req, record });
      if (e < 0) {
        record.status = record.shed ? 429 : 503;
        finish(record);
        onSlotFree();
        return;
      }
      record.engine = e;
      record.servedBy = this.addresses[e]!;
      perEngine[e]!++;
      const load = this.local[proxy]![e]!;
      load.pending += req.body.length;
      load.inflight++;
      let firstByte = false;
      const submit = (): void => {
        this.arriving[e]!.push({ request: req.engineRequest, entersAt: this.clock.now() + overhead[e]! });
        this.engines[e]!.submit(req.engineRequest, {
          onToken: (i) => {
            if (i === 0) {
              record.ttftMs = this.clock.now() - now;
              firstByte = true;
              load.pending -= req.body.length;
            }
            record.outputTokens++;
          },
          onFinish: () => {
            record.ok = true;
            record.status = 200;
            record.e2eMs = this.clock.now() - now;
            load.inflight--;
            finish(record);
            onSlotFree();
          },
          onError: (message) => {
            record.error = message;
            record.status = 400;
            if (!firstByte) load.pending -= req.body.length;
            load.inflight--;
            finish(record);
            onSlotFree();
          },
        });
      };
      if (policy.decisionLatencyMs > 0) this.clock.after(policy.decisionLatencyMs, submit);
      else submit();
    };
    let onSlotFree = (): void => undefined;
    if (shape.arrival.kind === "closed") {
      onSlotFree = () => { if (next < requests.length) send(requests[next++]!); };
      this.clock.at(WARMUP_MS, () => { for (let c = 0; c < (shape.arrival as { concurrency: number }).concurrency; c++) onSlotFree(); });
    } else {
      const times = poissonArrivals(requests.length, shape.arrival.ratePerS, seed);
      times.forEach((t, i) => this.clock.at(WARMUP_MS + t, () => send(requests[i]!)));
      next = requests.length;
    }
    this.clock.run();
    if (finished !== requests.length) throw new Error(`${policy.name}: ${finished} of ${requests.length} requests finished`);
    records.sort((a, b) => a.index - b.index);
    const stats = this.engines.map((e) => e.stats());
    const queries = stats.reduce((n, s) => n + s.prefixQueries, 0);
    return {
      policy: policy.name, shape: shape.name, seed, summary: summarize(records, lastFinish - WARMUP_MS), records,
      preemptions: stats.reduce((n, s) => n + s.preemptions, 0),
      recomputedTokens: this.engines.reduce((n, e) => n + e.recomputedTokens, 0),
      prefixHitRate: queries === 0 ? 0 : stats.reduce((n, s) => n + s.prefixHits, 0) / queries,
      perEngine, stats: policy.stats?.() ?? {},
    };
  }
}

/** Runs one policy on one shape and seed, from scratch. */
export function runLab(factory: PolicyFactory, options: LabOptions): LabResult {
  const started = performance.now();
  const lab = new Lab(options);
  const requests = labRequests(options.shape, options.seed, options.numPrompts);
  const policy = factory(lab, options.seed);
  const result = lab.run(policy, requests);
  return { ...result, wallS: (performance.now() - started) / 1000 };
}
