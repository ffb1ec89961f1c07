// The scraper against tiny HTTP servers on loopback: readings arrive; a failed scrape (refused
// connection, HTTP error) makes the endpoint not ready at once; a replica that stops answering
// goes stale after staleAfterMs, before its scrape even times out.
import assert from "node:assert/strict";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { Scraper } from "../../extension-server/src/load/scraper.ts";
import { isFresh } from "../../extension-server/src/scheduling/plugins.ts";

const METRICS = "vllm:num_requests_waiting{model_name=\"m\"} 4\nvllm:num_requests_running{model_name=\"m\"} 2\nvllm:kv_cache_usage_perc{model_name=\"m\"} 0.5\n";
const STALE_AFTER_MS = 150;

async function serve(handler: (res: ServerResponse) => void): Promise<{ server: Server; address: string }> {
  const server = createServer((_req, res) => handler(res));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, address: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function until(check: () => boolean, ms = 2000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) throw new Error("condition not met");
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe("scraper", () => {
  it("reads load, and a failed scrape makes the endpoint not ready at once", async () => {
    let mode: "ok" | "error" = "ok";
    const { server, address } = await serve((res) => (mode === "ok" ? res.end(METRICS) : res.writeHead(500).end()));
    let readings = 0;
    const scraper = new Scraper({ intervalMs: 20, timeoutMs: 500 }, () => readings++);
    const reading = () => scraper.readings().get(address)!;
    const fresh = () => isFresh(reading(), performance.now(), STALE_AFTER_MS);
    try {
      scraper.setEndpoints([address]);
      await until(() => reading().load !== undefined);
      assert.equal(reading().load!.waiting, 4);
      assert.equal(reading().load!.kvUsage, 0.5);
      assert.ok(fresh());
      assert.ok(readings >= 1, "every scrape is reported");

      mode = "error";
      await until(() => reading().consecutiveFailures > 0);
      assert.equal(fresh(), false, "HTTP 500: not ready at the first failure");
      assert.match(reading().lastError!, /HTTP 500/);
      mode = "ok";
      await until(() => reading().consecutiveFailures === 0);
      assert.ok(fresh(), "ready again at the first success");

      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      const closedAt = performance.now();
      await until(() => reading().consecutiveFailures > 0);
      assert.equal(fresh(), false);
      assert.ok(performance.now() - closedAt < 200, "a refused connection counts within a scrape interval");
    } finally {
      scraper.stop();
      server.close();
    }
  });

  it("goes stale when a replica stops answering, before the scrape times out", async () => {
    let hang = false;
    const { server, address } = await serve((res) => { if (!hang) res.end(METRICS); });
    const scraper = new Scraper({ intervalMs: 20, timeoutMs: 2000 }, () => undefined);
    const reading = () => scraper.readings().get(address)!;
    try {
      scraper.setEndpoints([address]);
      await until(() => reading().load !== undefined);
      hang = true;
      const hungAt = performance.now();
      await until(() => !isFresh(reading(), performance.now(), STALE_AFTER_MS));
      const staleAfter = performance.now() - hungAt;
      assert.ok(staleAfter <= STALE_AFTER_MS + 60, `stale after ${staleAfter} ms`);
      assert.equal(reading().consecutiveFailures, 0, "the hung scrape has not failed yet: staleness alone took it out");
    } finally {
      scraper.stop();
      server.closeAllConnections();
      server.close();
    }
  });

  it("fails a 10 MB body at the size cap without slowing the other endpoints", async () => {
    const line = "process_resident_memory_bytes 1\n";
    const big = line.repeat(Math.ceil((10 << 20) / line.length));
    let bigServed = 0;
    const hostile = await serve((res) => { bigServed++; res.end(big); });
    let goodScrapes = 0;
    const good = await serve((res) => { goodScrapes++; res.end(METRICS); });
    const scraper = new Scraper({ intervalMs: 20, timeoutMs: 2000 }, () => undefined);
    try {
      scraper.setEndpoints([hostile.address, good.address]);
      await until(() => (scraper.readings().get(hostile.address)?.consecutiveFailures ?? 0) > 0, 3000);
      const r = scraper.readings().get(hostile.address)!;
      assert.equal(r.load, undefined);
      assert.match(r.lastError!, /larger than 4194304 bytes/);
      const before = goodScrapes;
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.ok(goodScrapes - before >= 10, `the good endpoint was scraped ${goodScrapes - before} times in 500 ms (every 20 ms wanted)`);
      assert.ok(isFresh(scraper.readings().get(good.address), performance.now(), STALE_AFTER_MS));
      assert.ok(bigServed <= 12, `a failing endpoint is retried with backoff (${bigServed} requests)`);
    } finally {
      scraper.stop();
      for (const s of [hostile, good]) { s.server.closeAllConnections(); s.server.close(); }
    }
  });

  it("scrapes an endpoint whose output is costly to parse less often, so it costs only its own readings", async (t) => {
    const line = "process_resident_memory_bytes 1\n";
    const junk = line.repeat(Math.floor((4 << 20) / line.length) - 100) + METRICS; // just under the cap
    let junkScrapes = 0;
    const heavy = await serve((res) => { junkScrapes++; res.end(junk); });
    let goodScrapes = 0;
    const good = await serve((res) => { goodScrapes++; res.end(METRICS); });
    const scraper = new Scraper({ intervalMs: 20, timeoutMs: 2000 }, () => undefined);
    try {
      scraper.setEndpoints([heavy.address, good.address]);
      await until(() => scraper.readings().get(heavy.address)?.load !== undefined, 3000);
      const [j0, g0] = [junkScrapes, goodScrapes];
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const [j, g] = [junkScrapes - j0, goodScrapes - g0];
      t.diagnostic(`in one second: ${j} scrapes of the 4 MiB endpoint, ${g} of the small one (every 20 ms wanted)`);
      assert.equal(scraper.readings().get(heavy.address)!.load!.waiting, 4, "its readings still count");
      assert.ok(j * 4 <= g, `the costly endpoint was scraped ${j} times in a second, the cheap one ${g}`);
    } finally {
      scraper.stop();
      for (const s of [heavy, good]) { s.server.closeAllConnections(); s.server.close(); }
    }
  });

  it("stops scraping removed endpoints and starts on new ones", async () => {
    const a = await serve((res) => res.end(METRICS));
    const b = await serve((res) => res.end(METRICS));
    const scraper = new Scraper({ intervalMs: 20, timeoutMs: 500 }, () => undefined);
    try {
      scraper.setEndpoints([a.address]);
      await until(() => scraper.readings().get(a.address)?.load !== undefined);
      scraper.setEndpoints([b.address]);
      assert.deepEqual([...scraper.readings().keys()], [b.address]);
      await until(() => scraper.readings().get(b.address)?.load !== undefined);
    } finally {
      scraper.stop();
      for (const s of [a, b]) { s.server.closeAllConnections(); s.server.close(); }
    }
  });
});
