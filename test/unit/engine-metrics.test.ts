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
    assert.deepEqual(load, { engine: "vllm", waiting: 5, running: 7, kvUsage: 0.42, runningLoras: ["sql"], waitingLoras: ["math"], maxLoras: 4 });
  });

  it("falls back to vLLM's pre-0.9 gpu_cache_usage_perc", () => {
    const load = parseEngineLoad('vllm:num_requests_waiting{model_name="m"} 1\nvllm:gpu_cache_usage_perc{model_name="m"} 0.9\n');
    assert.equal(load.kvUsage, 0.9);
  });

  it("reads SGLang and trtllm-serve names", () => {
    assert.deepEqual(parseEngineLoad("sglang:num_queue_reqs 4\nsglang:num_running_reqs 9\nsglang:token_usage 0.5\n"),
      { engine: "sglang", waiting: 4, running: 9, kvUsage: 0.5, runningLoras: [], waitingLoras: [], maxLoras: 0 });
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
