// The benchmark client: sends the workload over HTTP with a fixed number of concurrent clients
// (and optionally a Poisson request rate), reads each streamed response, and records what vLLM's
// benchmark_serving.py records: TTFT, the gaps between chunks, end-to-end latency, token counts.
// Wall-clock durations are multiplied by the servers' time scale to report model time.
import { Agent, request } from "undici";
import type { RequestRecord } from "./summary.ts";
import { seededRandom, type WorkloadRequest } from "./workload.ts";

export interface LoadOptions {
  concurrency: number;
  /** Requests per second of model time; Infinity sends as fast as the clients allow. */
  requestRate: number;
  timeScale: number;
  /** Per-request limit in wall-clock milliseconds. */
  timeoutMs: number;
  model: string;
  seed: number;
  /** Reuse connections (a pool of concurrency + 4 keep-alive connections). Default: a new
   * connection for every request, as the seed's client did (benchmark_serving.py opens an aiohttp
   * session per request), so Envoy's kernel-balanced listener hands each request to a worker at
   * random; a pool instead fixes each worker's share of the requests for the whole run
   * (bench/client-connections.ts), which by the lab changes nothing measurable
   * (bench/lab/rr-chance.ts --connections; bench/results/seed-workload.md). */
  keepAlive?: boolean;
  onDone?: (record: RequestRecord) => void;
}

export interface LoadResult { records: RequestRecord[]; durationMs: number }

/** The chat messages of a request: one user message with the whole prompt (the seed's client), or a
 * system message with the request's `systemTokens` leading tokens and a user message with the rest. */
export function requestMessages(req: WorkloadRequest): Array<{ role: string; content: string }> {
  const k = req.systemTokens ?? 0;
  if (k <= 0) return [{ role: "user", content: req.tokens.join(" ") }];
  return [{ role: "system", content: req.tokens.slice(0, k).join(" ") }, { role: "user", content: req.tokens.slice(k).join(" ") }];
}

/** The JSON body the client sends: the bytes Envoy (and the infergate filter) sees. */
export function requestBody(req: WorkloadRequest, model: string): string {
  return JSON.stringify({
    model,
    messages: requestMessages(req),
    max_tokens: req.maxTokens,
    ignore_eos: true,
    stream: true,
    stream_options: { include_usage: true },
  });
}

/** Reads one SSE stream, timing chunks that carry content. */
async function readStream(stream: AsyncIterable<Buffer>, started: number, scale: number, record: RequestRecord): Promise<void> {
  let pending = "";
  let last = 0;
  for await (const chunk of stream) {
    const now = performance.now();
    pending += chunk.toString("utf8");
    let cut: number;
    while ((cut = pending.indexOf("\n\n")) >= 0) {
      const event = pending.slice(0, cut).replace(/^data: /, "");
      pending = pending.slice(cut + 2);
      if (event === "[DONE]" || event === "") continue;
      const data = JSON.parse(event) as { choices?: Array<{ delta?: { content?: string }; text?: string }>; usage?: { completion_tokens: number }; error?: { message: string } };
      if (data.error) throw new Error(data.error.message);
      if (data.usage) record.outputTokens = data.usage.completion_tokens;
      const content = data.choices?.[0]?.delta?.content ?? data.choices?.[0]?.text;
      if (!content) continue;
      if (last === 0) record.ttftMs = (now - started) * scale;
      else record.itlMs.push((now - last) * scale);
      last = now;
    }
  }
}

async function send(dispatcher: Agent, url: string, req: WorkloadRequest, o: LoadOptions, origin: number): Promise<RequestRecord> {
  const started = performance.now();
  const record: RequestRecord = {
    index: req.index, ok: false, shed: false, status: 0, startMs: (started - origin) * o.timeScale, ttftMs: 0, itlMs: [], e2eMs: 0,
    inputTokens: req.tokens.length, outputTokens: 0,
  };
  try {
    const res = await request(`${url}/v1/chat/completions`, {
      method: "POST", dispatcher, body: requestBody(req, o.model), headers: { "content-type": "application/json" }, reset: !o.keepAlive,
      headersTimeout: o.timeoutMs, bodyTimeout: o.timeoutMs,
    });
    record.status = res.statusCode;
    const servedBy = res.headers["x-served-by"];
    if (typeof servedBy === "string") record.servedBy = servedBy;
    if (res.statusCode !== 200) {
      record.shed = res.statusCode === 429;
      record.error = (await res.body.text()).slice(0, 300);
      return record;
    }
    await readStream(res.body, started, o.timeScale, record);
    record.e2eMs = (performance.now() - started) * o.timeScale;
    record.ok = record.outputTokens > 0;
    if (!record.ok) record.error = "no tokens streamed";
  } catch (err) {
    record.error = (err as Error).message;
  }
  return record;
}

/** Sends every request once; resolves when all have finished (each is bounded by its timeout). */
export async function runLoad(baseUrl: string, requests: WorkloadRequest[], o: LoadOptions): Promise<LoadResult> {
  const dispatcher = new Agent({ connections: o.concurrency + 4, keepAliveTimeout: 60_000, pipelining: 1 });
  const random = seededRandom(o.seed ^ 0x5eed);
  const records: RequestRecord[] = [];
  const origin = performance.now();
  let next = 0;
  let nextArrival = origin;
  const worker = async (): Promise<void> => {
    while (next < requests.length) {
      const req = requests[next++]!;
      if (Number.isFinite(o.requestRate)) {
        // Poisson arrivals: exponential gaps in model time, converted to wall time.
        nextArrival += (-Math.log(1 - random()) / o.requestRate) * 1000 / o.timeScale;
        const wait = nextArrival - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      const record = await send(dispatcher, baseUrl, req, o, origin);
      records.push(record);
      o.onDone?.(record);
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency, requests.length) }, worker));
  const durationMs = (performance.now() - origin) * o.timeScale;
  await dispatcher.close();
  return { records: records.sort((a, b) => a.index - b.index), durationMs };
}
