// Runs one simulated vLLM replica:
//   tsx sim/main.ts --host 127.0.0.2 --port 8000 --served-model-name qwq-32b,qwq
import { parseArgs } from "node:util";
import { startSimServer } from "./server.ts";

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "8000" },
    "served-model-name": { type: "string", default: "qwq-32b" },
    "ttft-ms": { type: "string", default: "50" },
    "itl-ms": { type: "string", default: "10" },
    "max-num-seqs": { type: "string", default: "256" },
  },
});

const sim = await startSimServer({
  host: values.host, port: Number(values.port),
  servedModels: values["served-model-name"].split(",").map((s) => s.trim()).filter(Boolean),
  ttftMs: Number(values["ttft-ms"]), itlMs: Number(values["itl-ms"]), maxNumSeqs: Number(values["max-num-seqs"]),
});
console.log(`sim listening on ${sim.address} serving ${values["served-model-name"]}`);
const stop = (): void => { void sim.close().then(() => process.exit(0)); };
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
