// Routes measured side by side: one request at a time to each route in turn, each route over its
// own connections taken in turn (one request per connection at a time), starting at a different
// route each iteration, so that the machine's drift falls on every route alike. The added latency
// of a route is then taken against a baseline route request by request (pairedAdded), as
// bench/overhead.ts does. Used by bench/filter-ab.ts and bench/filter-workers.ts.
import { Client } from "undici";

export interface InterleaveOptions {
  /** Connections per route; request i of a route goes over connection i % connections. */
  connections: number;
  /** Iterations sent first and not recorded. */
  warmup: number;
  /** Iterations recorded. */
  n: number;
  path: string;
  body: string;
  /** Go round the routes the other way on odd iterations, so each route follows each other one
   * equally often (without it, a route always follows the same one). */
  alternate?: boolean;
}

/** Milliseconds per recorded request, per route (index i: iteration i after the warm-up). */
export async function interleave(origins: Record<string, string>, o: InterleaveOptions): Promise<Record<string, number[]>> {
  const names = Object.keys(origins);
  const reversed = [...names].reverse();
  const clients = Object.fromEntries(names.map((r) => [r, Array.from({ length: o.connections }, () => new Client(origins[r]!, { pipelining: 1 }))]));
  const samples = Object.fromEntries(names.map((r) => [r, [] as number[]]));
  try {
    for (let i = 0; i < o.warmup + o.n; i++) {
      const order = o.alternate && i % 2 === 1 ? reversed : names;
      for (let k = 0; k < names.length; k++) {
        const route = order[(i + k) % names.length]!;
        const started = performance.now();
        const res = await clients[route]![i % o.connections]!.request({ path: o.path, method: "POST", body: o.body, headers: { "content-type": "application/json" } });
        await res.body.text();
        if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode} on ${route}`);
        if (i >= o.warmup) samples[route]!.push(performance.now() - started);
      }
    }
  } finally {
    await Promise.all(names.flatMap((r) => clients[r]!.map((c) => c.close())));
  }
  return samples;
}

/** Each recorded request of `route` minus the `baseline` request of the same iteration (ms). */
export function pairedAdded(samples: Record<string, number[]>, route: string, baseline: string): number[] {
  return samples[route]!.map((ms, i) => ms - samples[baseline]![i]!);
}
