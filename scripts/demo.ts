// `npm start`: the seed's setup on this machine. Three simulated vLLM replicas serving qwq-32b at
// the Pod IPs of manifests/standalone/seed.yaml, the extension server, and Envoy with the seed's
// two listeners: 8080 (plain round robin) and 8081 (routed by the infergate filter).
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfigFile } from "../extension-server/src/config/file-source.ts";
import { InfergateServer } from "../extension-server/src/server.ts";
import { startSimServer, type SimServer } from "../sim/server.ts";

const repo = join(fileURLToPath(import.meta.url), "..", "..");
const configPath = process.env.INFERGATE_CONFIG ?? join(repo, "manifests", "standalone", "seed.yaml");

async function main(): Promise<void> {
  const config = loadConfigFile(configPath);
  const sims: SimServer[] = [];
  const server = new InfergateServer({
    source: { file: configPath }, xdsPort: 18000, metricsPort: 9090, debugPort: 9091,
    envoy: { adminPort: 9901, plainPort: 8080, logLevel: "warn" },
  });
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    console.log("\nstopping...");
    await server.stop().catch(() => undefined);
    await Promise.all(sims.map((s) => s.close()));
    process.exit(0);
  };
  process.once("SIGINT", () => void stop());
  process.once("SIGTERM", () => void stop());

  for (const pool of config.pools) {
    for (const e of pool.endpoints) {
      // Like vLLM started with --served-model-name qwq-32b qwq: the plain route needs no rewrite.
      sims.push(await startSimServer({ host: e.ip, port: e.port, servedModels: ["qwq-32b", "qwq"], ttftMs: 200, itlMs: 20 }));
      console.log(`replica ${e.podName} (simulated vLLM) on ${e.ip}:${e.port}`);
    }
  }
  await server.start();
  console.log(`envoy pid ${server.envoy?.pid}`);
  console.log(`
infergate is up.
  8081  inference route: the infergate filter picks the replica (InferencePool reasoning-pool)
  8080  plain route: Envoy round robin over the same replicas
  9090  extension server metrics (/metrics);  9091 the snapshot being served (/snapshot);  9901 Envoy admin

Try the seed's request:

  curl -s http://127.0.0.1:8081/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model": "qwq", "messages": [{"role": "user", "content": "Who are you?"}]}' -i

Edit ${configPath} (weights, pods) and the change is live within a second.
Ctrl-C stops everything.`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
