// A vLLM-compatible simulated model server: the OpenAI endpoints vLLM serves, its error shapes and
// its Prometheus metric names, over real sockets. Timing comes from a pluggable engine.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { BatchingEngine } from "./batching-engine.ts";
import { ScaledClock } from "./clock.ts";
import { FixedLatencyEngine, type Engine } from "./engine.ts";
import { profileNamed, type StepProfile } from "./step-model.ts";
import { SimMetrics } from "./metrics.ts";
import { chunkObject, completionObject, errorBody, requestId, usage, usageChunk, type Api } from "./openai.ts";
import { chatPromptText, tokenize } from "./tokenizer.ts";

export interface SimOptions {
  host: string;
  port: number;
  servedModels: string[];
  ttftMs?: number;
  itlMs?: number;
  defaultMaxTokens?: number;
  maxNumSeqs?: number;
  /** Run the batching engine with this step profile (by name, or a full profile) instead of
   * the fixed-latency one. */
  profile?: string | StepProfile;
  /** Model time runs this many times faster than wall time (batching engine only). */
  timeScale?: number;
  /** Served model names that are LoRA adapters (they count against max_loras). */
  loraAdapters?: string[];
  /** Replaces the engine entirely. */
  engine?: Engine;
  legacyCacheMetric?: boolean;
  /** Largest accepted request body. */
  maxBodyBytes?: number;
}

export interface SimServer {
  readonly address: string;
  readonly host: string;
  readonly port: number;
  stats(): { requests: number; byModel: Record<string, number> };
  close(): Promise<void>;
}

interface Completion {
  api: Api;
  model: string;
  promptText: string;
  maxTokens: number;
  stream: boolean;
  includeUsage: boolean;
}

const WORDS = ["the", "model", "is", "a", "simulated", "replica", "of", "vLLM", "serving", "tokens"];

class SimHttp {
  readonly requests = { total: 0, byModel: {} as Record<string, number> };
  private readonly served: Set<string>;
  private readonly loras: Set<string>;
  readonly metrics: SimMetrics;
  address = "";

  constructor(private readonly opts: SimOptions, private readonly engine: Engine) {
    this.served = new Set([...opts.servedModels, ...(opts.loraAdapters ?? [])]);
    this.loras = new Set(opts.loraAdapters ?? []);
    this.metrics = new SimMetrics(engine, { modelName: opts.servedModels[0] ?? "unknown", legacyCacheMetric: opts.legacyCacheMetric });
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    res.setHeader("x-served-by", this.address);
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && path === "/health") { res.writeHead(200).end(); return; }
    if (req.method === "GET" && path === "/metrics") { void this.sendMetrics(res); return; }
    if (req.method === "GET" && path === "/v1/models") { this.sendJson(res, 200, this.modelList()); return; }
    if (req.method === "POST" && path === "/admin/load") {
      this.readBody(req, res, (body) => this.setExtraLoad(body, res));
      return;
    }
    if (req.method === "POST" && (path === "/v1/chat/completions" || path === "/v1/completions")) {
      this.readBody(req, res, (body) => this.complete(path === "/v1/chat/completions" ? "chat" : "completions", body, req, res));
      return;
    }
    this.sendJson(res, 404, errorBody(404, "NotFoundError", `No route for ${req.method} ${path}`));
  }

  private readBody(req: IncomingMessage, res: ServerResponse, then: (body: string) => void): void {
    const limit = this.opts.maxBodyBytes ?? 64 * 1024 * 1024;
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
    });
    req.on("end", () => {
      if (size > limit) this.sendJson(res, 413, errorBody(413, "BadRequestError", `Request body exceeds ${limit} bytes`));
      else then(Buffer.concat(chunks).toString("utf8"));
    });
  }

  /** Test hook (like llm-d-inference-sim's fake metrics): load reported on top of the engine's
   * own, e.g. {"waiting": 20, "kvUsage": 0.95}; {} clears it. */
  private setExtraLoad(body: string, res: ServerResponse): void {
    try {
      const extra = JSON.parse(body || "{}") as { waiting?: number; running?: number; kvUsage?: number };
      this.metrics.extra = { waiting: extra.waiting ?? 0, running: extra.running ?? 0, kvUsage: extra.kvUsage };
      this.sendJson(res, 200, this.metrics.extra);
    } catch (err) {
      this.sendJson(res, 400, errorBody(400, "BadRequestError", (err as Error).message));
    }
  }

  private parse(api: Api, body: string): Completion | { status: number; error: ReturnType<typeof errorBody> } {
    let json: Record<string, unknown>;
    try {
      // Like Python's json.loads on the raw bytes: a leading UTF-8 byte order mark is allowed.
      const parsed: unknown = JSON.parse(body.charCodeAt(0) === 0xfeff ? body.slice(1) : body);
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
      json = parsed as Record<string, unknown>;
    } catch (err) {
      return { status: 400, error: errorBody(400, "BadRequestError", `Invalid JSON body: ${(err as Error).message}`) };
    }
    const model = json.model;
    if (typeof model !== "string") return { status: 400, error: errorBody(400, "BadRequestError", "Field required: model", "model") };
    if (!this.served.has(model)) return { status: 404, error: errorBody(404, "NotFoundError", `The model \`${model}\` does not exist.`, "model") };
    const promptText = api === "chat" ? chatPromptText(json.messages) : typeof json.prompt === "string" ? json.prompt : Array.isArray(json.prompt) ? json.prompt.join(" ") : "";
    const requested = json.max_completion_tokens ?? json.max_tokens;
    const maxTokens = typeof requested === "number" && requested > 0 ? Math.floor(requested) : (this.opts.defaultMaxTokens ?? 16);
    const streamOptions = json.stream_options as { include_usage?: unknown } | undefined;
    return { api, model, promptText, maxTokens, stream: json.stream === true, includeUsage: streamOptions?.include_usage === true };
  }

  private complete(api: Api, body: string, req: IncomingMessage, res: ServerResponse): void {
    const parsed = this.parse(api, body);
    if ("error" in parsed) { this.sendJson(res, parsed.status, parsed.error); return; }
    this.requests.total++;
    this.requests.byModel[parsed.model] = (this.requests.byModel[parsed.model] ?? 0) + 1;
    const id = requestId(api);
    const created = Math.floor(Date.now() / 1000);
    const promptTokens = tokenize(parsed.promptText);
    const started = this.engine.now();
    let firstTokenAt = 0;
    const pieces: string[] = [];
    if (parsed.stream) res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    const lora = this.loras.has(parsed.model) ? parsed.model : undefined;
    const cancel = this.engine.submit({ id, model: parsed.model, promptTokens, maxTokens: parsed.maxTokens, ...(lora ? { lora } : {}) }, {
      onToken: (index) => {
        if (index === 0) firstTokenAt = this.engine.now();
        const text = (index === 0 ? "" : " ") + WORDS[index % WORDS.length];
        pieces.push(text);
        if (parsed.stream) res.write(`data: ${JSON.stringify(chunkObject(api, id, parsed.model, created, text, index === 0, index + 1 === parsed.maxTokens ? "length" : null))}\n\n`);
      },
      onFinish: () => {
        const u = usage(promptTokens.length, pieces.length);
        this.metrics.finished(u.prompt_tokens, u.completion_tokens, (firstTokenAt - started) / 1000, (this.engine.now() - started) / 1000);
        if (!parsed.stream) { this.sendJson(res, 200, completionObject(api, id, parsed.model, created, pieces.join(""), u)); return; }
        if (parsed.includeUsage) res.write(`data: ${JSON.stringify(usageChunk(api, id, parsed.model, created, u))}\n\n`);
        res.end("data: [DONE]\n\n");
      },
      onError: (message) => {
        if (parsed.stream) res.end(`data: ${JSON.stringify(errorBody(400, "BadRequestError", message))}\n\ndata: [DONE]\n\n`);
        else this.sendJson(res, 400, errorBody(400, "BadRequestError", message));
      },
    });
    // A client that goes away frees its slot, as vLLM aborts the request.
    res.on("close", () => { if (!res.writableFinished) cancel(); });
    req.on("aborted", cancel);
  }

  private modelList(): object {
    const created = Math.floor(Date.now() / 1000);
    const base = this.opts.servedModels[0] ?? null;
    const models = [...this.opts.servedModels.map((id) => ({ id, parent: null })), ...(this.opts.loraAdapters ?? []).map((id) => ({ id, parent: base }))];
    return { object: "list", data: models.map(({ id, parent }) => ({ id, object: "model", created, owned_by: "vllm", root: id, parent, max_model_len: 131072 })) };
  }

  private async sendMetrics(res: ServerResponse): Promise<void> {
    const text = await this.metrics.registry.metrics();
    res.writeHead(200, { "content-type": this.metrics.registry.contentType }).end(text);
  }

  private sendJson(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text);
  }
}

function makeEngine(opts: SimOptions): Engine {
  if (opts.engine) return opts.engine;
  if (opts.profile !== undefined) {
    const profile = typeof opts.profile === "string" ? profileNamed(opts.profile) : opts.profile;
    return new BatchingEngine(opts.maxNumSeqs ? { ...profile, maxNumSeqs: opts.maxNumSeqs } : profile, new ScaledClock(opts.timeScale ?? 1));
  }
  return new FixedLatencyEngine({ ttftMs: opts.ttftMs ?? 5, itlMs: opts.itlMs ?? 1, maxNumSeqs: opts.maxNumSeqs ?? 256, kvCapacityTokens: 65_536 });
}

export async function startSimServer(opts: SimOptions): Promise<SimServer> {
  const engine = makeEngine(opts);
  const sim = new SimHttp(opts, engine);
  const server: Server = createServer((req, res) => sim.handle(req, res));
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  sim.address = `${address}:${port}`;
  return {
    address: sim.address, host: address, port,
    stats: () => ({ requests: sim.requests.total, byModel: { ...sim.requests.byModel } }),
    close: async () => {
      engine.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
