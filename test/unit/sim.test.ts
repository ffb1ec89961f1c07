// The simulated vLLM replica over a real socket: OpenAI shapes, SSE streaming, vLLM's errors and
// metric names.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startSimServer, type SimServer } from "../../sim/server.ts";

async function metric(sim: SimServer, name: string): Promise<number> {
  const text = await (await fetch(`http://${sim.address}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  assert.ok(line, `${name} missing from /metrics`);
  return Number(line.split(" ").at(-1));
}

const post = (sim: SimServer, path: string, body: unknown) =>
  fetch(`http://${sim.address}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) });

describe("simulated vLLM replica", () => {
  let sim: SimServer;
  before(async () => { sim = await startSimServer({ host: "127.0.0.1", port: 0, servedModels: ["m1", "m2"], ttftMs: 1, itlMs: 0 }); });
  after(async () => { await sim.close(); });

  it("answers chat and text completions with usage, naming itself", async () => {
    const chat = await post(sim, "/v1/chat/completions", { model: "m1", messages: [{ role: "user", content: "one two three" }], max_tokens: 4 });
    assert.equal(chat.status, 200);
    assert.equal(chat.headers.get("x-served-by"), sim.address);
    const body = await chat.json() as any;
    assert.equal(body.object, "chat.completion");
    assert.equal(body.model, "m1");
    assert.equal(body.choices[0].message.role, "assistant");
    assert.deepEqual(body.usage, { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
    const text = await (await post(sim, "/v1/completions", { model: "m2", prompt: "a b", max_tokens: 2 })).json() as any;
    assert.equal(text.object, "text_completion");
    assert.equal(text.choices[0].text.split(" ").length, 2);
    assert.equal(text.usage.prompt_tokens, 2);
  });

  it("streams one SSE event per token, then usage when asked, then [DONE]", async () => {
    const res = await post(sim, "/v1/chat/completions", { model: "m1", messages: [{ role: "user", content: "hi" }], max_tokens: 6, stream: true, stream_options: { include_usage: true } });
    assert.match(res.headers.get("content-type")!, /text\/event-stream/);
    const events = (await res.text()).split("\n\n").filter(Boolean).map((e) => e.replace(/^data: /, ""));
    assert.equal(events.at(-1), "[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    const content = chunks.filter((c) => c.choices.length > 0);
    assert.equal(content.length, 6);
    assert.equal(content[0].choices[0].delta.role, "assistant");
    assert.equal(content.at(-1).choices[0].finish_reason, "length");
    assert.deepEqual(chunks.at(-1).usage, { prompt_tokens: 1, completion_tokens: 6, total_tokens: 7 });
  });

  it("rejects unknown models with vLLM's 404 and bad JSON with 400", async () => {
    const missing = await post(sim, "/v1/chat/completions", { model: "nope", messages: [] });
    assert.equal(missing.status, 404);
    const err = await missing.json() as any;
    assert.equal(err.error.type, "NotFoundError");
    assert.equal(err.error.message, "The model `nope` does not exist.");
    assert.equal((await post(sim, "/v1/completions", "{bad")).status, 400);
    assert.equal((await post(sim, "/v1/completions", { prompt: "x" })).status, 400);
  });

  it("lists its models and reports health", async () => {
    const list = await (await fetch(`http://${sim.address}/v1/models`)).json() as any;
    assert.deepEqual(list.data.map((m: any) => m.id), ["m1", "m2"]);
    assert.equal((await fetch(`http://${sim.address}/health`)).status, 200);
  });

  it("exposes vLLM's metric names with live values", async () => {
    const slow = await startSimServer({ host: "127.0.0.1", port: 0, servedModels: ["m"], ttftMs: 300, itlMs: 0 });
    try {
      const pending = post(slow, "/v1/completions", { model: "m", prompt: "a b c d", max_tokens: 2 });
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(await metric(slow, "vllm:num_requests_running"), 1);
      assert.ok(await metric(slow, "vllm:kv_cache_usage_perc") > 0);
      await (await pending).text();
      assert.equal(await metric(slow, "vllm:num_requests_running"), 0);
      assert.equal(await metric(slow, "vllm:prompt_tokens_total"), 4);
      assert.equal(await metric(slow, "vllm:generation_tokens_total"), 2);
      for (const name of ["vllm:num_requests_waiting", "vllm:prefix_cache_queries_total", "vllm:num_preemptions_total", "vllm:time_to_first_token_seconds_count"]) {
        await metric(slow, name);
      }
    } finally {
      await slow.close();
    }
  });
});
