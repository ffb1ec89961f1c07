// How the benchmark client (bench/client.ts) spreads its requests over connections, and so over
// Envoy's worker threads: Envoy's listener uses SO_REUSEPORT, so the kernel hands each new
// connection to a worker by a hash of its addresses and the connection stays there. By default the
// client opens a connection per request, as the seed's client did, so each request's worker is an
// even draw (what the policy lab models); with `keepAlive` it reuses a pool, and each worker's
// share is then fixed for the run by how the kernel spread the pool (LabOptions.connections).
// It sends `--requests` requests from `--concurrency` closed-loop clients, in each mode, to a local
// server that streams a few chunks after a random pause (loopback only, bounded by the count).
//
//   npx tsx bench/client-connections.ts [--concurrency 60] [--requests 3000] [--workers 2]
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { runLoad } from "./client.ts";
import { percentile, spread, spreadCell } from "./summary.ts";
import { seededRandom, type WorkloadRequest } from "./workload.ts";

const { values } = parseArgs({ options: {
  concurrency: { type: "string", default: "60" },
  requests: { type: "string", default: "3000" },
  workers: { type: "string", default: "2" },
} });
const concurrency = Number(values.concurrency);
const count = Number(values.requests);
const workers = Number(values.workers);

/** Requests seen per client connection (by its port). */
const perConnection = new Map<number, number>();
const random = seededRandom(42);
const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  const port = req.socket.remotePort ?? 0;
  perConnection.set(port, (perConnection.get(port) ?? 0) + 1);
  req.resume();
  req.on("end", () => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    // A first token after 2–40 ms, then four more 5 ms apart: completions end at scattered times.
    let sent = 0;
    const chunk = (): void => {
      res.write(`data: ${JSON.stringify({ choices: [{ delta: { content: "x" } }] })}\n\n`);
      if (++sent < 5) setTimeout(chunk, 5);
      else res.end(`data: ${JSON.stringify({ choices: [], usage: { completion_tokens: sent } })}\n\ndata: [DONE]\n\n`);
    };
    setTimeout(chunk, 2 + random() * 38);
  });
});
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const requests: WorkloadRequest[] = Array.from({ length: count }, (_, index) => ({ index, tokens: ["x"], maxTokens: 5 }));

const lines: string[] = [`${count} requests, ${concurrency} closed-loop clients (bench/client.ts's runLoad), ${workers} Envoy workers:`];
for (const keepAlive of [false, true]) {
  perConnection.clear();
  const { records } = await runLoad(url, requests, { concurrency, requestRate: Infinity, timeScale: 1, timeoutMs: 30_000, model: "m", seed: 1, keepAlive });
  const counts = [...perConnection.values()];
  // Each connection's worker drawn at random, as the kernel's hash does: the busiest worker's share.
  const assign = seededRandom(7);
  const shares = Array.from({ length: 10_000 }, () => {
    const perWorker = new Array<number>(workers).fill(0);
    for (const n of counts) perWorker[Math.floor(assign() * workers)]! += n;
    return Math.max(...perWorker) / count;
  }).sort((a, b) => a - b);
  lines.push(
    `- ${keepAlive ? "keepAlive (a pool)" : "a connection per request (default)"}: ${records.filter((r) => !r.ok).length} failed, ` +
      `${perConnection.size} connections, ${spreadCell(spread(counts))} requests each; the busiest worker's share over 10,000 draws of the connections' workers: ` +
      `median ${percentile(shares, 50).toFixed(3)} [5%: ${percentile(shares, 5).toFixed(3)}, 95%: ${percentile(shares, 95).toFixed(3)}] (even: ${(1 / workers).toFixed(3)})`,
  );
}
server.close();
console.log(lines.join("\n"));
