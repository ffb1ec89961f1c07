// Runs a set of simulated vLLM replicas in one process (the benchmark starts it as a child, so
// the replicas get a core of their own and a fresh KV cache for every mode). Prints "ready".
//   tsx bench/replicas.ts --ips 127.0.3.1,127.0.3.2 --port 8000 --profile qwq-32b-4xa10 --time-scale 8
import { parseArgs } from "node:util";
import { startSimServer } from "../sim/server.ts";

const { values } = parseArgs({ options: {
  ips: { type: "string" },
  port: { type: "string", default: "8000" },
  profile: { type: "string", default: "qwq-32b-4xa10" },
  "time-scale": { type: "string", default: "1" },
  models: { type: "string", default: "qwq-32b,qwq" },
} });
if (!values.ips) throw new Error("--ips is required");

const servers = await Promise.all(values.ips.split(",").map((host) => startSimServer({
  host, port: Number(values.port), servedModels: values.models.split(","), profile: values.profile, timeScale: Number(values["time-scale"]),
})));
console.log(`ready ${servers.map((s) => s.address).join(" ")}`);
const stop = (): void => { void Promise.all(servers.map((s) => s.close())).then(() => process.exit(0)); };
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
