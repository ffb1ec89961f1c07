// The seed's request through real Envoy + the compiled filter + the standalone extension server,
// against simulated vLLM replicas over real sockets.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { after, before, describe, it } from "node:test";
import { startSimServer, type SimServer } from "../../sim/server.ts";
import { podsYaml, postJson, SIM_PORT, startStack, type Stack } from "../support/stack.ts";

// The seed's InferencePool and InferenceModel documents, verbatim from the shipped manifest.
const seedDocs = readFileSync(new URL("../../manifests/standalone/seed.yaml", import.meta.url), "utf8").split(/^---$/m).slice(0, 2).join("---");
const POOL_IPS = ["127.0.1.11", "127.0.1.12", "127.0.1.13"];
const ROGUE_IP = "127.0.1.99";
const POOL = new Set(POOL_IPS.map((ip) => `${ip}:${SIM_PORT}`));
const SEED_REQUEST = { model: "qwq", messages: [{ role: "user", content: "Who are you?" }] };

describe("seed request through Envoy", () => {
  let stack: Stack;
  let rogue: SimServer;

  before(async () => {
    // Replicas answer to both names, like vLLM with --served-model-name qwq-32b qwq, so the
    // plain route (no rewrite) can serve the seed's request too.
    stack = await startStack(seedDocs + podsYaml("qwq-32b", POOL_IPS), POOL_IPS.map((ip) => ({ ip, models: ["qwq-32b", "qwq"] })));
    rogue = await startSimServer({ host: ROGUE_IP, port: SIM_PORT, servedModels: ["qwq-32b", "qwq"] });
  });

  after(async () => {
    await stack?.stop();
    await rogue?.close();
  });

  it("routes the seed's curl on the inference port to a qwq-32b replica", async () => {
    const r = await postJson(`${stack.inferenceUrl}/v1/chat/completions`, SEED_REQUEST);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.object, "chat.completion");
    assert.equal(r.body.model, "qwq-32b", "the InferenceModel's target model is what the replica served");
    assert.ok(POOL.has(r.servedBy!), `served by ${r.servedBy}`);
    assert.ok(r.body.choices[0].message.content.length > 0);
  });

  it("serves the same request on the plain port by round robin over the pool", async () => {
    const served = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const r = await postJson(`${stack.plainUrl}/v1/chat/completions`, SEED_REQUEST);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.model, "qwq", "the plain route does not rewrite");
      served.add(r.servedBy!);
    }
    assert.deepEqual([...served].sort(), [...POOL].sort(), "round robin visits every replica");
  });

  it("ignores a client-supplied x-gateway-destination-endpoint", async () => {
    for (let i = 0; i < 20; i++) {
      const r = await postJson(`${stack.inferenceUrl}/v1/chat/completions`, SEED_REQUEST, { "x-gateway-destination-endpoint": `${ROGUE_IP}:${SIM_PORT}` });
      assert.equal(r.status, 200);
      assert.ok(POOL.has(r.servedBy!), `served by ${r.servedBy}`);
    }
    const models = await fetch(`${stack.inferenceUrl}/v1/models`, { headers: { "x-gateway-destination-endpoint": `${ROGUE_IP}:${SIM_PORT}` } });
    assert.equal(models.status, 200);
    assert.ok(POOL.has(models.headers.get("x-served-by")!));
    assert.equal(rogue.stats().requests, 0, "the rogue server was never reached");
  });

  it("answers an unknown model with 404 in OpenAI's error shape", async () => {
    const before = stack.replicas.reduce((n, s) => n + s.stats().requests, 0);
    const r = await postJson(`${stack.inferenceUrl}/v1/chat/completions`, { model: "gpt-7", messages: [] });
    assert.equal(r.status, 404);
    assert.equal(r.body.error.code, "model_not_found");
    assert.equal(r.body.error.param, "model");
    assert.match(r.body.error.message, /gpt-7/);
    assert.equal(stack.replicas.reduce((n, s) => n + s.stats().requests, 0), before, "no replica saw it");
  });

  it("answers malformed or model-less bodies with 400", async () => {
    const cases: Array<[string, RegExp]> = [
      ['{"messages": [{"role": "user"', /Malformed request body/],
      ["not json", /Malformed request body/],
      ['{"messages": [{"role": "user", "content": "hi"}]}', /no "model" field/],
      ['{"model": 42}', /must be a string/],
      ['{"messages": {"role": "user"], "model": "qwq"}', /Malformed request body/],
    ];
    for (const [body, message] of cases) {
      const r = await postJson(`${stack.inferenceUrl}/v1/chat/completions`, body);
      assert.equal(r.status, 400, `${body} -> ${r.text}`);
      assert.equal(r.body.error.type, "invalid_request_error", `${body} -> ${r.text}`);
      assert.match(r.body.error.message, message);
    }
    const empty = await fetch(`${stack.inferenceUrl}/v1/completions`, { method: "POST" });
    assert.equal(empty.status, 400);
    // The filter reads the whole body, so damage anywhere is its to report.
    for (const body of ['{"model": "qwq", "messages": [}', '{"model": "qwq", "messages": [], "n": }', '{"model": "qwq"} {"model": "other"}']) {
      const r = await postJson(`${stack.inferenceUrl}/v1/chat/completions`, body);
      assert.equal(r.status, 400, body);
      assert.equal(r.servedBy, null, `${body}: rejected by the filter`);
    }
  });

  it("refuses a second model key: the replica would serve the last one, past the model check", async () => {
    for (const body of [
      '{"messages": [{"role": "user", "content": "hi"}], "model": "qwq", "model": "secret-model"}',
      '{"model": "secret-model", "model": "qwq", "prompt": "x"}',
      '{"model": "qwq", "mod\\u0065l": "secret-model"}',
    ]) {
      const r = await postJson(`${stack.inferenceUrl}/v1/chat/completions`, body);
      assert.equal(r.status, 400, `${body} -> ${r.text}`);
      assert.equal(r.body.error.param, "model");
      assert.match(r.body.error.message, /more than one "model" key/);
      assert.equal(r.servedBy, null);
    }
  });

  it("checks percent-encoded spellings of an inference path like the path itself", async () => {
    for (const path of ["/v1/chat/%63ompletions", "/v1%2Fchat%2Fcompletions", "/v1//chat/./completions"]) {
      const unknown = await postJson(`${stack.inferenceUrl}${path}`, { model: "not-served", messages: [] });
      assert.equal(unknown.status, 404, `${path} -> ${unknown.text}`);
      assert.equal(unknown.body.error.code, "model_not_found", path);
      const bad = await postJson(`${stack.inferenceUrl}${path}`, '{"model": "qwq", "model": "x"}');
      assert.equal(bad.status, 400, path);
    }
  });

  it("refuses a model name that is not valid Unicode, and accepts a byte order mark", async () => {
    const lone = await postJson(`${stack.inferenceUrl}/v1/chat/completions`, '{"model": "qw\\ud800q", "messages": []}');
    assert.equal(lone.status, 400, lone.text);
    assert.match(lone.body.error.message, /not valid Unicode/);
    const bom = await fetch(`${stack.inferenceUrl}/v1/completions`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"model": "qwq", "prompt": "hi", "max_tokens": 1}')]),
    });
    assert.equal(bom.status, 200, await bom.text());
  });

  it("routes a body that arrives in many small chunks, model last, with escapes", async () => {
    const messages = Array.from({ length: 50 }, (_, i) => ({ role: "user", content: `turn ${i} with "quotes" and {braces} [brackets] \\ and \u00e9` }));
    const body = `{"messages": ${JSON.stringify(messages)}, "max_tokens": 4, "mod\\u0065l": "q\\u0077q"}`;
    const { status, text, servedBy } = await chunkedPost(`${stack.inferenceUrl}/v1/chat/completions`, body, 40);
    assert.equal(status, 200, text);
    const parsed = JSON.parse(text);
    assert.equal(parsed.model, "qwq-32b", "model found after 50 messages and rewritten");
    assert.ok(POOL.has(servedBy!));
    assert.ok(parsed.usage.prompt_tokens > 100, "the replica received the whole body");
  });

  it("routes a 200 KB body and a streamed completion", async () => {
    const big = { model: "qwq", prompt: "x".repeat(200 * 1024), max_tokens: 3 };
    const r = await postJson(`${stack.inferenceUrl}/v1/completions`, big);
    assert.equal(r.status, 200, r.text.slice(0, 200));
    assert.equal(r.body.model, "qwq-32b");
    const stream = await fetch(`${stack.inferenceUrl}/v1/chat/completions`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...SEED_REQUEST, stream: true, max_tokens: 5 }),
    });
    assert.equal(stream.status, 200);
    assert.match(stream.headers.get("content-type") ?? "", /text\/event-stream/);
    const events = (await stream.text()).split("\n\n").filter((e) => e.startsWith("data: "));
    assert.equal(events.at(-1), "data: [DONE]");
    assert.equal(JSON.parse(events[0]!.slice(6)).model, "qwq-32b");
  });
});

describe("the filter's decisions in Envoy's stats", () => {
  it("counts routed, rewritten and rejected requests; Envoy counts requests per endpoint", async () => {
    const ips = ["127.0.1.21", "127.0.1.22"];
    const stack = await startStack(seedDocs + podsYaml("qwq-32b", ips), ips.map((ip) => ({ ip, models: ["qwq-32b"] })));
    try {
      for (let i = 0; i < 12; i++) assert.equal((await postJson(`${stack.inferenceUrl}/v1/chat/completions`, SEED_REQUEST)).status, 200);
      assert.equal((await postJson(`${stack.inferenceUrl}/v1/chat/completions`, { model: "nope" })).status, 404);
      assert.equal((await postJson(`${stack.inferenceUrl}/v1/chat/completions`, "{bad")).status, 400);
      const text = await stack.server.envoy!.admin("stats?filter=infergate");
      const stat = (name: string): number => Number(new RegExp(`^${name.replace(/[.]/g, "\\.")}: (\\d+)$`, "m").exec(text)?.[1] ?? NaN);
      assert.equal(stat("wasmcustom.infergate.routed_total"), 12, text);
      assert.equal(stat("wasmcustom.infergate.rewritten_total"), 12);
      assert.equal(stat("wasmcustom.infergate.rejected_404_total"), 1);
      assert.equal(stat("wasmcustom.infergate.rejected_400_total"), 1);
      for (const status of [413, 415, 429, 500, 503]) assert.equal(stat(`wasmcustom.infergate.rejected_${status}_total`), 0, "every counter exists, at 0, before its first request");
      assert.doesNotMatch(text, /infergate\.endpoint\./, "no counter is named after an endpoint (they would outlive it)");
      const prometheus = await stack.server.envoy!.admin("stats/prometheus");
      assert.match(prometheus, /^infergate_routed_total\{\} 12$/m, "Prometheus names: the namespace dropped, dots as underscores");
      assert.match(prometheus, /^infergate_rejected_404_total\{\} 1$/m);
      const perEndpoint = ips.map((ip) => Number(new RegExp(`^envoy_cluster_endpoint_rq_total\\{envoy_cluster_name="[^"]+-picked",envoy_endpoint_address="${ip}:8000"\\} (\\d+)$`, "m").exec(prometheus)?.[1] ?? 0));
      assert.equal(perEndpoint[0]! + perEndpoint[1]!, 12, prometheus);
    } finally {
      await stack.stop();
    }
  });
});

/** POSTs with Transfer-Encoding: chunked, writing `pieces` chunks with a pause between them. */
function chunkedPost(url: string, body: string, pieces: number): Promise<{ status: number; text: string; servedBy: string | null }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", headers: { "content-type": "application/json", "transfer-encoding": "chunked" } }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (c: string) => (text += c)).on("end", () =>
        resolve({ status: res.statusCode ?? 0, text, servedBy: res.headers["x-served-by"] as string | null }));
    });
    req.on("error", reject);
    const bytes = Buffer.from(body);
    const size = Math.ceil(bytes.length / pieces);
    let offset = 0;
    const writeNext = (): void => {
      if (offset >= bytes.length) { req.end(); return; }
      req.write(bytes.subarray(offset, offset + size));
      offset += size;
      setTimeout(writeNext, 5);
    };
    writeNext();
  });
}
