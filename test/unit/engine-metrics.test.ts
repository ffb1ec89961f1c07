// Reading load from the metric names each engine exposes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseEngineLoad } from "../../extension-server/src/load/engine-metrics.ts";
import { parseSamples } from "../../extension-server/src/load/prometheus-text.ts";

describe("engine metrics", () => {
  it("reads vLLM v1 names, summing over engines", () => {
    const load = parseEngineLoad(`# HELP vllm:num_requests_waiting Number of requests waiting.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="qwq-32b"} 3.0
vllm:num_requests_waiting{engine="1",model_name="qwq-32b"} 2.0
vllm:num_requests_running{engine="0",model_name="qwq-32b"} 7.0
vllm:kv_cache_usage_perc{engine="0",model_name="qwq-32b"} 0.42
vllm:lora_requests_info{max_lora="4",running_lora_adapters="sql,chat",waiting_lora_adapters=""} 1.7e9
vllm:lora_requests_info{max_lora="4",running_lora_adapters="sql",waiting_lora_adapters="math"} 1.8e9
vllm:prefix_cache_hits_total{model_name="qwq-32b"} 1200.0
`);
    assert.deepEqual(load, { engine: "vllm", waiting: 5, running: 7, kvUsage: 0.42, runningLoras: ["sql"], waitingLoras: ["math"], maxLoras: 4, reported: { waiting: true, kv: true } });
  });

  it("falls back to vLLM's pre-0.9 gpu_cache_usage_perc", () => {
    const load = parseEngineLoad('vllm:num_requests_waiting{model_name="m"} 1\nvllm:gpu_cache_usage_perc{model_name="m"} 0.9\n');
    assert.equal(load.kvUsage, 0.9);
  });

  it("reads SGLang and trtllm-serve names", () => {
    assert.deepEqual(parseEngineLoad("sglang:num_queue_reqs 4\nsglang:num_running_reqs 9\nsglang:token_usage 0.5\n"),
      { engine: "sglang", waiting: 4, running: 9, kvUsage: 0.5, runningLoras: [], waitingLoras: [], maxLoras: 0, reported: { waiting: true, kv: true } });
    const trt = parseEngineLoad("trtllm_num_requests_waiting 2\ntrtllm_num_requests_running 3\ntrtllm_kv_cache_utilization 0.25\n");
    assert.equal(trt.engine, "trtllm");
    assert.equal(trt.kvUsage, 0.25);
  });

  it("reports an unknown engine as idle rather than failing", () => {
    assert.equal(parseEngineLoad("# nothing here\nprocess_cpu_seconds_total 12\n").engine, "unknown");
  });

  it("parses labels with escapes and values with timestamps", () => {
    const samples = parseSamples('m{a="x\\"y",b="1,2"} 3 1700000000\nother 1\n', new Set(["m"]));
    assert.deepEqual(samples.get("m"), [{ labels: { a: 'x"y', b: "1,2" }, value: 3 }]);
    assert.equal(samples.has("other"), false);
  });
});

describe("hostile metrics", () => {
  it("clamps Infinity, 1e16, 1e300, NaN and negative values to a finite, non-negative range", () => {
    for (const v of ["+Inf", "Inf", "1e16", "1e300", "NaN", "-Inf", "-5", "-1e300"]) {
      const load = parseEngineLoad(`vllm:num_requests_waiting ${v}\nvllm:num_requests_running ${v}\nvllm:kv_cache_usage_perc ${v}\n` +
        `vllm:lora_requests_info{max_lora="${v}",running_lora_adapters="a"} 1\n`);
      for (const [field, x] of Object.entries({ waiting: load.waiting, running: load.running, kvUsage: load.kvUsage, maxLoras: load.maxLoras })) {
        assert.ok(Number.isFinite(x) && x >= 0 && x <= 1e6, `${v}: ${field} = ${x}`);
      }
      assert.ok(load.kvUsage <= 1, `${v}: kvUsage ${load.kvUsage}`);
      assert.ok(Number.isInteger(load.maxLoras), `${v}: maxLoras ${load.maxLoras}`);
    }
    // A sum over many large series stays in range too.
    const many = Array.from({ length: 100 }, (_, i) => `vllm:num_requests_waiting{engine="${i}"} 1e300`).join("\n");
    assert.ok(parseEngineLoad(many).waiting <= 1e6);
  });

  it("keeps LoRA adapter names that could inject snapshot records out of the reading", () => {
    const load = parseEngineLoad('vllm:num_requests_waiting 0\nvllm:lora_requests_info{max_lora="2",running_lora_adapters="x\\nmodel free-model llm critical\\ntarget secret 1\\n#,good-one,a b,c=d,e\tf",waiting_lora_adapters="ok"} 1\n');
    assert.deepEqual(load.runningLoras, ["good-one"]);
    assert.deepEqual(load.waitingLoras, ["ok"]);
  });

  it("parses a 1 MB line and a pathological label in linear time", () => {
    const started = performance.now();
    // Unterminated label values: the old regular expression retried from every position (quadratic).
    const huge = `vllm:lora_requests_info{running_lora_adapters="${"x".repeat(1 << 20)}} 1\n`;
    const long = `vllm:lora_requests_info{a="${"y".repeat(30_000)}",${"b".repeat(20_000)}="1} 1\n`;
    const escapes = `vllm:lora_requests_info{running_lora_adapters="${'\\"'.repeat(20_000)}"} 1\n`;
    const samples = parseSamples(huge + long + escapes + "vllm:num_requests_waiting 3\n", new Set(["vllm:lora_requests_info", "vllm:num_requests_waiting"]));
    const ms = performance.now() - started;
    assert.ok(ms < 200, `took ${ms} ms`);
    assert.equal(samples.get("vllm:num_requests_waiting")?.[0]?.value, 3, "lines after them still read");
    assert.equal(samples.get("vllm:lora_requests_info")?.[0]?.labels.running_lora_adapters, '"'.repeat(20_000));
  });

  it("reads Prometheus' special values", () => {
    const samples = parseSamples("a +Inf\na -Inf\na NaN\na 1.5e3\na nonsense\n", new Set(["a"]));
    assert.deepEqual(samples.get("a")!.map((s) => s.value), [Infinity, -Infinity, NaN, 1500]);
  });
});
