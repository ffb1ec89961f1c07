// infergate extension server CLI.
//   tsx extension-server/src/main.ts standalone --config manifests/standalone/seed.yaml [--no-envoy]
import { parseArgs } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { ConfigError } from "./config/routing-config.ts";
import { InfergateServer } from "./server.ts";

const USAGE = `usage: infergate standalone --config FILE [options]
       infergate kubernetes --hooks-port 5005 (--tls-cert F --tls-key F --tls-ca F | --insecure) [options]
         (in a cluster: watches InferencePools, InferenceModels, ReferenceGrants and Pods; serves
         Envoy Gateway's hooks and xDS)

  --config FILE          YAML with InferencePool, InferenceModel and Pod documents (required)
  --listen ADDRESS       address Envoy's listeners, the metrics, module, hooks and (kubernetes) xDS
                         servers bind (default 127.0.0.1)
  --plain-port N         plain round-robin listener (default 8080)
  --inference-port N     inference listener for every pool (default: each pool's attach-to port, else 8081)
  --admin-port N         Envoy admin, on 127.0.0.1 (default 9901)
  --xds-port N           xDS gRPC server (default 18000; on 127.0.0.1 in standalone mode)
  --metrics-port N       Prometheus /metrics and /healthz of this server (default 9090)
  --debug-port N         /snapshot, the snapshot being served, on 127.0.0.1 only (default 9091; 0: off)
  --wasm FILE            compiled filter (default build/infergate.wasm)
  --no-envoy             serve xDS only; run Envoy yourself
  --hooks-port N         also serve Envoy Gateway's extension hooks (implies --no-envoy)
  --xds-advertise H[:P]  where Envoy Gateway's Envoys reach this xDS server (default 127.0.0.1)
  --module-advertise H   Envoys fetch the filter module over HTTP from H:<module port>/filter/infergate.wasm
  --module-port N        the module's own listener, with --module-advertise (default 18001)
  --tls-cert FILE        mutual TLS on xDS and the hooks: this server's certificate (PEM) ...
  --tls-key FILE         ... its private key ...
  --tls-ca FILE          ... and the CA that signs the clients' certificates (Envoy Gateway's CA:
                         the ca.crt of its \`envoy\` Secret); a client without one is refused
  --tls-server-ca FILE   the CA that signed --tls-cert, given to Envoys to verify this server
                         (default: --tls-ca)
  --envoy-cert-dir DIR   where Envoys find their client certificate, tls.crt and tls.key (default
                         /certs, where Envoy Gateway mounts its \`envoy\` Secret)
  --hooks-plaintext      keep the hooks in plaintext with TLS on (Envoy Gateway's standalone mode
                         cannot use TLS to its extension)
  --insecure             kubernetes mode without TLS: xDS and the hooks answer anyone who reaches them
  --watch-namespaces A,B kubernetes mode: watch only these namespaces (a namespaced install, with
                         Roles there; manifests/kubernetes/infergate-namespaced.yaml); default: all
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
      "debug-port": { type: "string", default: "9091" },
      "module-port": { type: "string", default: "18001" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      "tls-ca": { type: "string" },
      "tls-server-ca": { type: "string" },
      "envoy-cert-dir": { type: "string", default: "/certs" },
      "hooks-plaintext": { type: "boolean", default: false },
      insecure: { type: "boolean", default: false },
      "watch-namespaces": { type: "string" },
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
  const tlsFlags = [values["tls-cert"], values["tls-key"], values["tls-ca"]];
  const fail = (message: string): never => { process.stderr.write(`infergate: ${message}\n`); process.exit(2); };
  if (tlsFlags.some((f) => f !== undefined) && !tlsFlags.every((f) => f !== undefined)) fail("--tls-cert, --tls-key and --tls-ca go together");
  const tls = values["tls-cert"] ? {
    files: { cert: values["tls-cert"], key: values["tls-key"]!, ca: values["tls-ca"]! },
    serverCa: values["tls-server-ca"], envoyCertDir: values["envoy-cert-dir"]!, plaintextHooks: values["hooks-plaintext"],
  } : undefined;
  const localEnvoy = !(values["no-envoy"] || values["hooks-port"] || mode === "kubernetes");
  if (tls && localEnvoy) fail("TLS is for Envoys on other hosts; the Envoy this command runs reaches xDS on loopback (add --no-envoy or --hooks-port)");
  if (mode === "kubernetes" && !tls && !values.insecure) fail("kubernetes mode needs --tls-cert, --tls-key and --tls-ca (mutual TLS on xDS and the hooks), or --insecure");
  let kubernetes: KubeConfig | undefined;
  if (mode === "kubernetes") {
    kubernetes = new KubeConfig();
    kubernetes.loadFromDefault(); // in-cluster service account, or KUBECONFIG
  }
  const server = new InfergateServer({
    source: kubernetes ? { kubernetes, namespaces: values["watch-namespaces"]?.split(",").map((n) => n.trim()).filter((n) => n !== "") } : { file: values.config! },
    wasmPath: values.wasm,
    listenAddress: values.listen,
    xdsPort: Number(values["xds-port"]),
    metricsPort: Number(values["metrics-port"]),
    debugPort: Number(values["debug-port"]) || undefined,
    modulePort: Number(values["module-port"]),
    tls,
    hooksPort: values["hooks-port"] ? Number(values["hooks-port"]) : undefined,
    moduleAdvertise: values["module-advertise"] ? { host: values["module-advertise"] } : undefined,
    xdsAdvertise: values["xds-advertise"] ? { host: values["xds-advertise"].split(":")[0]!, port: values["xds-advertise"].includes(":") ? Number(values["xds-advertise"].split(":")[1]) : undefined } : undefined,
    envoy: !localEnvoy ? undefined : {
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
  const xdsAddress = kubernetes ? values.listen : "127.0.0.1";
  const secure = tls ? " (mutual TLS)" : "";
  console.error(`infergate: xDS on ${xdsAddress}:${server.xdsPort}${secure}, metrics on ${values.listen}:${server.metricsPort}`
    + `${server.debugPort ? `, /snapshot on 127.0.0.1:${server.debugPort}` : ""}${server.modulePort ? `, module on ${values.listen}:${server.modulePort}` : ""}`
    + `${server.hooksPort ? `, Envoy Gateway hooks on ${values.listen}:${server.hooksPort}${tls && !tls.plaintextHooks ? " (mutual TLS)" : ""}` : ""}`);
}

void main();
