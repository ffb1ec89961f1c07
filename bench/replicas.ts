// Simulated vLLM replicas for the real-Envoy benchmark, one process, each replica with its own step
// profile: the calibrated one, or it slowed down by a factor (a slower GPU generation; see
// lab/shapes.ts). Prints "ready" once every replica listens.
//   tsx bench/replicas.ts --ips 127.0.3.1,127.0.3.2 [--slowdown 1,1.6] [--port 8000]
//       [--profile qwq-32b-4xa10] [--time-scale 8] [--models qwq-32b,qwq]
import { parseArgs } from "node:util";
import { startSimServer } from "../sim/server.ts";
import { profileNamed } from "../sim/step-model.ts";
import { slowedProfile } from "./lab/shapes.ts";

const { values } = parseArgs({ options: {
  ips: { type: "string" },
  slowdown: { type: "string" },
  port: { type: "string", default: "8000" },
  profile: { type: "string", default: "qwq-32b-4xa10" },
  "time-scale": { type: "string", default: "1" },
  models: { type: "string", default: "qwq-32b,qwq" },
} });
if (!values.ips) throw new Error("--ips is required");
const ips = values.ips.split(",");
const factors = values.slowdown ? values.slowdown.split(",").map(Number) : ips.map(() => 1);
if (factors.length !== ips.length) throw new Error("--slowdown needs one factor per replica");

const servers = await Promise.all(ips.map((host, i) => startSimServer({
  host, port: Number(values.port), servedModels: values.models.split(","),
  profile: slowedProfile(factors[i]!, profileNamed(values.profile)), timeScale: Number(values["time-scale"]),
})));
console.log(`ready ${servers.map((s) => s.address).join(" ")}`);
const stop = (): void => { void Promise.all(servers.map((s) => s.close())).then(() => process.exit(0)); };
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
