// The routing policies the lab compares. Each is a PolicyFactory: given the lab (engines, clock,
// the proxies' own counts) and the seed, a Policy that picks an engine per request.
import { chainHash, tokenHash } from "../../sim/kv-cache.ts";
import { seededRandom } from "../workload.ts";
import { ExtensionServer, Scraper } from "./control-plane.ts";
import type { Core } from "./core.ts";
import { predictFirstToken } from "./fork.ts";
import type { PolicyFactory, RouteContext } from "./lab.ts";

/**
 * Envoy's ROUND_ROBIN, as bench/calibrate.ts models it: every worker of every Envoy keeps its own
 * index, starting at a random host (Envoy seeds it per load balancer instance).
 */
export const roundRobin: PolicyFactory = (lab, seed) => {
  const random = seededRandom(0x5eed ^ seed);
  const n = lab.engines.length;
  const cursors = Array.from({ length: lab.proxies * lab.workers }, () => (lab.workers * lab.proxies === 1 ? 0 : Math.floor(random() * n)));
  return {
    name: "round-robin", decisionLatencyMs: 0,
    route: ({ proxy, worker }) => cursors[proxy * lab.workers + worker]!++ % n,
  };
};

/**
 * Envoy's LEAST_REQUEST with its defaults (equal weights): two hosts drawn at random (with
 * replacement), the one with fewer active requests wins. Active requests are the host's
 * `rq_active`, one count per Envoy across its workers.
 */
export const leastRequest: PolicyFactory = (lab, seed) => {
  const random = seededRandom(0x1ea57 ^ seed);
  const n = lab.engines.length;
  return {
    name: "least-request", decisionLatencyMs: 0,
    route: ({ proxy }) => {
      const counts = lab.local[proxy]!;
      let best = -1;
      for (let k = 0; k < 2; k++) {
        const c = Math.floor(random() * n);
        if (best < 0 || counts[c]!.inflight < counts[best]!.inflight) best = c;
      }
      return best;
    },
  };
};

/** The approximate prefix index of the Inference Extension's EPP (v1.5.0,
 * approximateprefix/): the serialized messages in 64-character blocks (16 tokens × 4 characters),
 * chained hashes seeded with the target model, at most 256 blocks; per server an LRU of block
 * hashes as large as its `num_gpu_blocks` (autoTune from vllm:cache_config_info). */
export class PrefixIndex {
  private readonly perServer: Array<Map<number, true>>;
  constructor(servers: number, private readonly capacity: number) {
    this.perServer = Array.from({ length: servers }, () => new Map());
  }

  static hashes(text: string, model: string, blockChars = 64, maxBlocks = 256): number[] {
    const out: number[] = [];
    let parent = tokenHash(model);
    const end = Math.min(text.length, blockChars * maxBlocks);
    for (let i = 0; i + blockChars <= end; i += blockChars) {
      parent = chainHash(parent, tokenHash(text.slice(i, i + blockChars)));
      out.push(parent);
    }
    return out;
  }

  /** Blocks matched per server: walk the hashes in order while some server holds the block, and
   * credit every server that holds it (matchLongestPrefix). */
  match(hashes: number[]): number[] {
    const counts = this.perServer.map(() => 0);
    for (const h of hashes) {
      let any = false;
      this.perServer.forEach((lru, s) => { if (lru.has(h)) { counts[s]!++; any = true; } });
      if (!any) break;
    }
    return counts;
  }

  /** Records that `server` was picked for a request with these hashes (PreRequest). */
  add(hashes: number[], server: number): void {
    const lru = this.perServer[server]!;
    for (const h of hashes) {
      lru.delete(h);
      lru.set(h, true);
      if (lru.size > this.capacity) lru.delete(lru.keys().next().value!);
    }
  }
}

/**
 * The Inference Extension's default scheduler, v1.5.0 (reference/inference-extension.md §4,
 * bench/peers/EPP.md): one EPP for every Envoy, called per request over ext_proc; metrics scraped
 * every 50 ms per endpoint and used however old they are; queue-scorer (weight 2, min-max over
 * waiting requests), kv-cache-utilization-scorer (2, 1 − KV use), prefix-cache-scorer (3, matched
 * blocks / request blocks from its approximate index); max-score picker, ties broken at random. No
 * filter and no shedding (every request's priority is 0). The ext_proc round trip for a ~16 KB
 * body is taken as 4 ms (EPP.md measured 2.6 ms at 4 KB, 16 ms at 200 KB).
 */
export const epp: PolicyFactory = (lab, seed) => {
  const random = seededRandom(0xe99 ^ seed);
  const scraper = new Scraper(lab, lab.options.timing, seed ^ 0xe99e99);
  const index = new PrefixIndex(lab.engines.length, lab.profiles[0]!.kvBlocks);
  const n = lab.engines.length;
  return {
    name: "epp", decisionLatencyMs: 4,
    route: ({ req }) => {
      const loads = scraper.readings.map((r) => r.load);
      const waiting = loads.map((l) => l?.waiting ?? 0);
      const lo = Math.min(...waiting), hi = Math.max(...waiting);
      const hashes = PrefixIndex.hashes(req.messagesJson, "qwq-32b");
      const matched = index.match(hashes);
      const scores = loads.map((l, i) => {
        const queue = hi === lo ? 1 : (hi - waiting[i]!) / (hi - lo);
        const kv = 1 - (l?.kvUsage ?? 0);
        const prefix = hashes.length === 0 ? 0 : matched[i]! / hashes.length;
        return 2 * queue + 2 * kv + 3 * prefix;
      });
      // Shuffle, then take the best (a stable sort after a shuffle: ties at random).
      let best = -1, seen = 0;
      for (let i = 0; i < n; i++) {
        if (best >= 0 && scores[i]! < scores[best]!) continue;
        if (best < 0 || scores[i]! > scores[best]!) { best = i; seen = 1; continue; }
        if (random() * ++seen < 1) best = i;
      }
      index.add(hashes, best);
      return best;
    },
  };
};

export interface InfergateOptions {
  /** The server renders the engine fields the picker reads (`waiting=`, `kv=`), as it does; false:
   * scores only, as a server from before them. */
  engineFields?: boolean;
  /** Filter tuning keys to push on top of the server's (lab-only sweeps). */
  tuning?: Record<string, number>;
  /** Render kv= in steps of this many thousandths (fewer pushes); 1: exact. */
  kvStep?: number;
}

/**
 * infergate: the extension server (its own scoring, through adapter.ts) pushes snapshots; each Envoy
 * worker is one router of the compiled filter core (build/core.wasm), holding the last snapshot
 * that reached it, and routes the request body with its Envoy's own counts and prefix memory
 * (the workers of one Envoy share both), exactly as filter/src/stream.ts calls decide().
 */
export function infergate(core: Core, opts: InfergateOptions = {}, name = "infergate"): PolicyFactory {
  return (lab, seed) => {
    const routers: number[] = [];
    for (let p = 0; p < lab.proxies; p++) {
      for (let w = 0; w < lab.workers; w++) {
        const h = core.routerCreate(BigInt(seed * 1000 + p * 10 + w + 1) * 0x9e3779b1n);
        core.routerEndpoints(h, lab.addresses.join(","));
        // One prefix memory per Envoy: its workers copy each other's picks (shared_load.ts).
        if (w > 0) core.routerShareMemory?.(h, routers[p * lab.workers]!);
        routers.push(h);
      }
    }
    let latest = "";
    const configured = routers.map(() => "");
    let nacks = 0, affinity = 0, routed = 0;
    const server = new ExtensionServer(lab, lab.options.timing, seed, (text) => { latest = text; }, { engineFields: opts.engineFields ?? true, kvStep: opts.kvStep ?? 1, ...(opts.tuning ? { tuning: opts.tuning } : {}) });
    const index = new Map(lab.addresses.map((a, i) => [a, i]));
    const loads = new Float64Array(lab.engines.length * 2);
    return {
      name, decisionLatencyMs: 0,
      route: ({ proxy, worker, req, record }: RouteContext) => {
        const k = proxy * lab.workers + worker;
        const h = routers[k]!;
        if (configured[k] !== latest) {
          if (core.routerConfigure(h, latest).startsWith("error")) nacks++;
          configured[k] = latest;
        }
        lab.local[proxy]!.forEach((l, i) => { loads[2 * i] = l.pending; loads[2 * i + 1] = l.inflight; });
        const out = core.routerRoute(h, req.body, loads);
        const parts = out.split(" ");
        if (parts[0] !== "route") {
          record.shed = out === "reply 429";
          return -1;
        }
        routed++;
        record.affinity = parts[3] === "1";
        if (record.affinity) affinity++;
        return index.get(parts[2]!.split(",")[0]!)!;
      },
      stats: () => ({ pushes: server.pushes, nacks, affinityShare: routed === 0 ? 0 : affinity / routed }),
    };
  };
}

/**
 * The oracle: it sees every engine's exact state with no delay (its block pool and prefix cache,
 * its running and waiting requests, the step in progress, the requests still in their API-server
 * overhead) and sends each request where its own first token will come soonest, found by running a
 * copy of each engine forward with the request added (fork.ts). It knows nothing of requests that
 * have not arrived yet, so it is greedy: it does not hold capacity back for them.
 */
export const oracle: PolicyFactory = (lab, seed) => {
  const random = seededRandom(0x0ac1e ^ seed);
  return {
    name: "oracle", decisionLatencyMs: 0,
    route: ({ now, req, record }) => {
      let best = -1, bestAt = Infinity, ties = 0;
      lab.engines.forEach((engine, e) => {
        const entersAt = now + lab.profiles[e]!.requestOverheadMs;
        const at = predictFirstToken(engine, now, lab.arrivingAt(e, now), req.engineRequest, entersAt);
        if (at < bestAt) { best = e; bestAt = at; ties = 1; } else if (at === bestAt && random() * ++ties < 1) best = e;
      });
      record.predictedTtftMs = bestAt - now;
      return best;
    },
  };
};
