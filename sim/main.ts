// Runs one simulated vLLM replica:
//   tsx sim/main.ts --host 127.0.0.2 --port 8000 --served-model-name qwq-32b,qwq
//   tsx sim/main.ts --profile qwq-32b-4xa10 --time-scale 10 --lora-adapters sql-lora,chat-lora
import { parseArgs } from "node:util";
import { startSimServer } from "./server.ts";
import { PROFILES } from "./step-model.ts";

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "8000" },
    "served-model-name": { type: "string", default: "qwq-32b" },
    "lora-adapters": { type: "string", default: "" },
    // Without --profile: fixed latencies. With it: the batching engine with that step profile.
    profile: { type: "string" },
    "time-scale": { type: "string", default: "1" },
    "ttft-ms": { type: "string", default: "50" },
    "itl-ms": { type: "string", default: "10" },
    "max-num-seqs": { type: "string" },
    // Expose the pre-0.9 vllm:gpu_cache_usage_perc instead of vllm:kv_cache_usage_perc.
    "legacy-cache-metric": { type: "boolean", default: false },
  },
});

const list = (s: string): string[] => s.split(",").map((x) => x.trim()).filter(Boolean);
if (values.profile && !PROFILES[values.profile]) throw new Error(`unknown profile ${values.profile}; known: ${Object.keys(PROFILES).join(", ")}`);
const sim = await startSimServer({
  host: values.host, port: Number(values.port),
  servedModels: list(values["served-model-name"]), loraAdapters: list(values["lora-adapters"]),
  ...(values.profile ? { profile: values.profile, timeScale: Number(values["time-scale"]) } : { ttftMs: Number(values["ttft-ms"]), itlMs: Number(values["itl-ms"]) }),
  ...(values["max-num-seqs"] ? { maxNumSeqs: Number(values["max-num-seqs"]) } : {}),
  legacyCacheMetric: values["legacy-cache-metric"],
});
console.log(`sim listening on ${sim.address} serving ${values["served-model-name"]}${values.profile ? ` (profile ${values.profile}, time scale ${values["time-scale"]})` : ""}`);
const stop = (): void => { void sim.close().then(() => process.exit(0)); };
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
