// infergate extension server CLI.
//   tsx extension-server/src/main.ts standalone --config manifests/standalone/seed.yaml [--no-envoy]
import { parseArgs } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { ConfigError } from "./config/routing-config.ts";
import { InfergateServer } from "./server.ts";

const USAGE = `usage: infergate standalone --config FILE [options]
       infergate kubernetes --hooks-port 5005 [--xds-port 18000] [--xds-advertise HOST] [--listen 0.0.0.0]
         (in a cluster: watches InferencePools, InferenceModels and Pods; serves Envoy Gateway's hooks and xDS)

  --config FILE          YAML with InferencePool, InferenceModel and Pod documents (required)
  --listen ADDRESS       address Envoy's listeners and the metrics endpoint bind (default 127.0.0.1)
  --plain-port N         plain round-robin listener (default 8080)
  --inference-port N     inference listener for every pool (default: each pool's attach-to port, else 8081)
  --admin-port N         Envoy admin, on 127.0.0.1 (default 9901)
  --xds-port N           xDS gRPC server, on 127.0.0.1 (default 18000)
  --metrics-port N       Prometheus /metrics of this server (default 9090)
  --wasm FILE            compiled filter (default build/infergate.wasm)
  --no-envoy             serve xDS only; run Envoy yourself
  --hooks-port N         also serve Envoy Gateway's extension hooks (implies --no-envoy)
  --xds-advertise H[:P]  where Envoy Gateway's Envoys reach this xDS server (default 127.0.0.1)
  --module-advertise H   Envoys fetch the filter module over HTTP from H:<metrics port>/filter/infergate.wasm
  --envoy-log-level L    Envoy's log level (default warn)
`;

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      config: { type: "string" },
      listen: { type: "string", default: "127.0.0.1" },
      "plain-port": { type: "string", default: "8080" },
      "inference-port": { type: "string" },
      "admin-port": { type: "string", default: "9901" },
      "xds-port": { type: "string", default: "18000" },
      "metrics-port": { type: "string", default: "9090" },
      wasm: { type: "string" },
      "no-envoy": { type: "boolean", default: false },
      "hooks-port": { type: "string" },
      "xds-advertise": { type: "string" },
      "module-advertise": { type: "string" },
      "envoy-log-level": { type: "string", default: "warn" },
      help: { type: "boolean", default: false },
    },
  });
  const mode = positionals[0];
  if (values.help || !(mode === "standalone" && values.config) && mode !== "kubernetes") {
    process.stderr.write(USAGE);
    process.exit(values.help ? 0 : 2);
  }
  let kubernetes: KubeConfig | undefined;
  if (mode === "kubernetes") {
    kubernetes = new KubeConfig();
    kubernetes.loadFromDefault(); // in-cluster service account, or KUBECONFIG
  }
  const server = new InfergateServer({
    source: kubernetes ? { kubernetes } : { file: values.config! },
    wasmPath: values.wasm,
    listenAddress: values.listen,
    xdsPort: Number(values["xds-port"]),
    metricsPort: Number(values["metrics-port"]),
    hooksPort: values["hooks-port"] ? Number(values["hooks-port"]) : undefined,
    moduleAdvertise: values["module-advertise"] ? { host: values["module-advertise"] } : undefined,
    xdsAdvertise: values["xds-advertise"] ? { host: values["xds-advertise"].split(":")[0]!, port: values["xds-advertise"].includes(":") ? Number(values["xds-advertise"].split(":")[1]) : undefined } : undefined,
    envoy: values["no-envoy"] || values["hooks-port"] || kubernetes ? undefined : {
      adminPort: Number(values["admin-port"]),
      plainPort: Number(values["plain-port"]),
      inferencePort: values["inference-port"] ? Number(values["inference-port"]) : undefined,
      logLevel: values["envoy-log-level"],
    },
  });
  const shutdown = (): void => { void server.stop().then(() => process.exit(0)); };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
  try {
    await server.start();
  } catch (err) {
    if (err instanceof ConfigError) console.error(`invalid configuration:\n  ${err.problems.join("\n  ")}`);
    else console.error(err);
    await server.stop().catch(() => undefined);
    process.exit(1);
  }
  console.error(`infergate: xDS on 127.0.0.1:${server.xdsPort}, metrics on ${values.listen}:${server.metricsPort}${server.hooksPort ? `, Envoy Gateway hooks on ${values.listen}:${server.hooksPort}` : ""}`);
}

void main();
