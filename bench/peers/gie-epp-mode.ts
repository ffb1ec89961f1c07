// The `gie-epp` mode of `npm run bench` (bench/run.ts): the Gateway API Inference Extension's
// endpoint picker (EPP) v1.5.0 picks every request, with its default scheduler, through the same
// Envoy as the other modes and to the same (freshly restarted) replicas.
//
// How: startEpp() (bench/peers/gie-epp.ts) runs kube-apiserver + etcd with one Pod per simulated
// replica (podIP and Ready set through the status subresource) and an InferencePool selecting them,
// and the EPP watching that pool. The benchmark's infergate configuration then gets a v1
// InferencePool over the same replicas whose endpointPickerRef names the EPP (FailClose, so a
// request the EPP did not route fails instead of being routed by infergate), and a model,
// `qwq-epp`, that sends to it the way `qwq` sends to the infergate mode's pool (both rewrite to
// `qwq-32b`). So the request path is the one a user of infergate with an EPP gets: the infergate
// filter validates and rewrites, then Envoy's ext_proc calls the EPP, whose answer decides the
// endpoint (README: "With an endpoint picker"). The EPP scrapes the replicas every 50 ms, its
// default and the same interval as infergate's extension server.
//
// The EPP binds its ports on every interface (free ports; bench/peers/EPP.md).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { EPP_VERSION, startEpp, type Epp } from "./gie-epp.ts";

const repo = new URL("../..", import.meta.url).pathname;
const MODULE_DIR = join(repo, ".cache", "go", "mod", `sigs.k8s.io/gateway-api-inference-extension@${EPP_VERSION}`);
const POOL = "reasoning-pool-epp";
export const GIE_EPP_MODEL = "qwq-epp";
export const GIE_EPP_BUILD = "bash scripts/build-epp.sh && bash scripts/build-kube-apiserver.sh";

/** What a mode served by a peer beside infergate's Envoy adds to a benchmark run. */
export interface PeerMode {
  /** YAML documents appended to the benchmark's infergate configuration. */
  readonly yaml: string;
  /** Waits until a request to `url` (the inference listener) is routed through the peer. */
  ready(url: string): Promise<void>;
  /** Checks the mode's `requests` were the peer's doing, and says so for the report. */
  check(requests: number): Promise<string>;
  stop(): Promise<void>;
}

/** The prebuilt EPP, its module (CRDs) and kube-apiserver/etcd: from the environment
 * (scripts/test-e2e.sh sets it) or the cache the build scripts fill. Undefined when one is missing. */
function builtBinaries(): Record<string, string> | undefined {
  const env = {
    EPP_BIN: process.env.EPP_BIN ?? join(repo, ".cache", "epp", EPP_VERSION, "epp"),
    EPP_MODULE_DIR: process.env.EPP_MODULE_DIR ?? MODULE_DIR,
    KUBE_APISERVER_BIN: process.env.KUBE_APISERVER_BIN ?? join(repo, ".cache", "kube", "bin", "kube-apiserver"),
    ETCD_BIN: process.env.ETCD_BIN ?? join(repo, ".cache", "kube", "bin", "etcd"),
  };
  const crds = join(env.EPP_MODULE_DIR, "config", "crd", "bases");
  return [env.EPP_BIN, env.KUBE_APISERVER_BIN, env.ETCD_BIN, crds].every((p) => existsSync(p)) ? env : undefined;
}

/** Why the mode cannot run here, or undefined when it can. */
export function gieEppUnavailable(): string | undefined {
  return builtBinaries() ? undefined
    : `mode gie-epp needs the EPP ${EPP_VERSION} and kube-apiserver/etcd built into .cache/: run \`${GIE_EPP_BUILD}\` (Go; the first build takes about 10 minutes)`;
}

/** infergate's side: a v1 pool over the benchmark's Pods (label app: qwq-32b) picked by the EPP. */
export function gieEppYaml(eppPort: number): string {
  return `---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: ${POOL}}
spec:
  selector: {matchLabels: {app: qwq-32b}}
  targetPorts: [{number: 8000}]
  endpointPickerRef: {name: epp, port: {number: ${eppPort}}, failureMode: FailClose}
---
apiVersion: v1
kind: Service
metadata: {name: epp}
spec: {clusterIP: 127.0.0.1, ports: [{name: grpc-ext-proc, port: ${eppPort}}]}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: ${GIE_EPP_MODEL}}
spec:
  modelName: ${GIE_EPP_MODEL}
  criticality: Critical
  poolRef: {name: ${POOL}}
  targetModels: [{name: qwq-32b, weight: 100}]
`;
}

/** Successful scheduling decisions the EPP has made (inference_extension_scheduler_attempts_total). */
async function scheduled(epp: Epp): Promise<number> {
  const text = await (await fetch(epp.eppMetricsUrl)).text();
  let n = 0;
  for (const m of text.matchAll(/^inference_extension_scheduler_attempts_total\{([^}]*)\} (\S+)$/gm)) {
    if (/status="success"/.test(m[1]!)) n += Number(m[2]);
  }
  return n;
}

/** Starts the EPP over `ips` (port 8000), before the benchmark's Envoy, which needs its port. */
export async function startGieEppMode(ips: string[]): Promise<PeerMode> {
  const env = builtBinaries();
  if (!env) throw new Error(gieEppUnavailable());
  Object.assign(process.env, env);
  const epp = await startEpp({ replicas: ips.map((ip) => `${ip}:8000`), namespace: "bench", poolName: POOL });
  let before = 0;
  return {
    yaml: gieEppYaml(epp.grpcPort),
    async ready(url) {
      // FailClose answers 503 until Envoy's first health check of the EPP passes.
      const deadline = Date.now() + 30_000;
      const body = JSON.stringify({ model: GIE_EPP_MODEL, prompt: "ready?", max_tokens: 1 });
      for (;;) {
        const res = await fetch(`${url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body }).catch(() => undefined);
        await res?.text();
        if (res?.status === 200) break;
        if (Date.now() > deadline) throw new Error(`gie-epp: no request routed through the EPP in 30 s (last status ${res?.status})\n${epp.eppLogs().slice(-10).join("\n")}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      before = await scheduled(epp);
    },
    async check(requests) {
      const picked = (await scheduled(epp)) - before;
      if (picked < requests) throw new Error(`gie-epp: the EPP scheduled ${picked} of ${requests} requests`);
      return `the EPP scheduled ${picked} of ${requests} requests`;
    },
    stop: () => epp.stop(),
  };
}
