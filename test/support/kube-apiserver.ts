// A real Kubernetes API server for tests and peer benchmarks: etcd and kube-apiserver, built from
// their Go modules by scripts/build-kube-apiserver.sh, on loopback ports, with one static admin
// token. No kubelet, scheduler or controller-manager runs: Pods are objects whose status callers
// set themselves through the status subresource.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { ApiextensionsV1Api, CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { Agent, request } from "undici";
import { parseAllDocuments } from "yaml";
import { waitFor } from "./stack.ts";
import { scratchDir } from "./scratch-dir.ts";

const repo = new URL("../..", import.meta.url).pathname;

export interface KubeApiServerOptions {
  /** Fixed ports; any left out are picked free on 127.0.0.1. */
  apiPort?: number;
  etcdPort?: number;
  etcdPeerPort?: number;
  /** Start-up budget (etcd and the API server), default 90 s. */
  timeoutMs?: number;
}

export interface KubeApiServer {
  /** https://127.0.0.1:<port> (self-signed; clients skip verification). */
  readonly url: string;
  readonly token: string;
  readonly kc: KubeConfig;
  /** A kubeconfig file for other processes (token auth, insecure-skip-tls-verify). */
  readonly kubeconfigPath: string;
  /** The last lines etcd and the API server printed. */
  readonly logs: string[];
  /** Sends a raw JSON request as kubectl would (client-node's typed models drop fields they do not
   * map, e.g. a CRD schema's `x-kubernetes-*` extensions). Returns status and body text. */
  raw(method: string, path: string, body?: unknown, contentType?: string): Promise<{ status: number; text: string }>;
  /** Creates CustomResourceDefinitions and waits until every one of them is Established. */
  installCrds(crds: Array<Record<string, any>>, timeoutMs?: number): Promise<void>;
  /** Creates an object as `kubectl create` would (the kinds of infergate's manifests, and custom
   * resources by their plural); throws with the API server's answer if it is refused (an object
   * that already exists is left as it is with `ifMissing`). */
  create(obj: Record<string, any>, opts?: { ifMissing?: boolean }): Promise<void>;
  /** A client configuration that authenticates as a ServiceAccount (a token from the TokenRequest
   * API), so requests are authorized by that account's RBAC only. */
  serviceAccountConfig(namespace: string, name: string): Promise<KubeConfig>;
  stop(): Promise<void>;
}

/** kube-apiserver and etcd: KUBE_APISERVER_BIN and ETCD_BIN (scripts/test-e2e.sh sets them before
 * entering its network namespace), else built or found by scripts/build-kube-apiserver.sh. */
export function kubeBinaries(): { apiserver: string; etcd: string } {
  if (process.env.KUBE_APISERVER_BIN && process.env.ETCD_BIN) return { apiserver: process.env.KUBE_APISERVER_BIN, etcd: process.env.ETCD_BIN };
  const [apiserver, etcd] = execFileSync("bash", [join(repo, "scripts/build-kube-apiserver.sh")], { encoding: "utf8" }).trim().split("\n");
  return { apiserver: apiserver!, etcd: etcd! };
}

/** The Gateway API's standard CRD of `plural` (e.g. referencegrants): GATEWAY_API_CRDS (set by
 * scripts/test-e2e.sh), else found or fetched by scripts/gateway-api-crds.sh. */
export function gatewayApiCrd(plural: string): Record<string, any> {
  const dir = process.env.GATEWAY_API_CRDS ?? execFileSync("bash", [join(repo, "scripts/gateway-api-crds.sh")], { encoding: "utf8" }).trim();
  const docs = parseAllDocuments(readFileSync(join(dir, `gateway.networking.k8s.io_${plural}.yaml`), "utf8")).map((d) => d.toJS());
  return docs.find((d) => d?.kind === "CustomResourceDefinition")!;
}

/** The Inference Extension's CRD (`inference.networking.k8s.io_inferencepools` for the v1
 * InferencePool), from its v1.5.0 module: EPP_MODULE_DIR (set by scripts/test-e2e.sh), else the
 * copy scripts/build-epp.sh leaves in .cache/. */
export function inferenceExtensionCrd(name: string): Record<string, any> {
  const dir = process.env.EPP_MODULE_DIR ?? join(repo, ".cache/go/mod/sigs.k8s.io/gateway-api-inference-extension@v1.5.0");
  const docs = parseAllDocuments(readFileSync(join(dir, "config/crd/bases", `${name}.yaml`), "utf8")).map((d) => d.toJS());
  return docs.find((d) => d?.kind === "CustomResourceDefinition")!;
}

/** A TCP port free on 127.0.0.1 at the time of asking. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function spawnLogged(bin: string, args: string[], logs: string[], tag: string): ChildProcess {
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
  const keep = (c: Buffer): void => { logs.push(`[${tag}] ${c.toString()}`); if (logs.length > 200) logs.shift(); };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  return child;
}

async function kill(child: ChildProcess | undefined): Promise<void> {
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  try { process.kill(-child.pid, "SIGTERM"); } catch { return; }
  const timer = setTimeout(() => { try { process.kill(-child.pid!, "SIGKILL"); } catch { /* gone */ } }, 3000);
  await exited;
  clearTimeout(timer);
}

/** Kinds whose REST resource is not their lower-cased plural, and the cluster-scoped ones. */
const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"]);
const PLURALS: Record<string, string> = { NetworkPolicy: "networkpolicies" };

/** The collection an object is created in: /api/v1/... for the core group, /apis/<group>/<version>/... otherwise. */
function collectionPath(obj: Record<string, any>): string {
  const apiVersion = String(obj.apiVersion);
  const prefix = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const plural = PLURALS[obj.kind] ?? `${String(obj.kind).toLowerCase()}s`;
  if (CLUSTER_SCOPED.has(obj.kind)) return `${prefix}/${plural}`;
  return `${prefix}/namespaces/${obj.metadata?.namespace ?? "default"}/${plural}`;
}

export async function startKubeApiServer(opts: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  const bins = kubeBinaries();
  const dir = scratchDir("infergate-kube");
  const logs: string[] = [];
  const token = "infergate-test-token";
  const [apiPort, etcdPort, etcdPeerPort] = [opts.apiPort ?? await freePort(), opts.etcdPort ?? await freePort(), opts.etcdPeerPort ?? await freePort()];
  let etcd: ChildProcess | undefined;
  let apiserver: ChildProcess | undefined;
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
  const url = `https://127.0.0.1:${apiPort}`;
  const stop = async (): Promise<void> => {
    await kill(apiserver);
    await kill(etcd);
    await dispatcher.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    etcd = spawnLogged(bins.etcd, ["--data-dir", join(dir, "etcd"),
      "--listen-client-urls", `http://127.0.0.1:${etcdPort}`, "--advertise-client-urls", `http://127.0.0.1:${etcdPort}`,
      "--listen-peer-urls", `http://127.0.0.1:${etcdPeerPort}`, "--initial-advertise-peer-urls", `http://127.0.0.1:${etcdPeerPort}`,
      "--initial-cluster", `default=http://127.0.0.1:${etcdPeerPort}`], logs, "etcd");
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048, publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs8", format: "pem" } });
    writeFileSync(join(dir, "sa.pub"), publicKey);
    writeFileSync(join(dir, "sa.key"), privateKey);
    writeFileSync(join(dir, "tokens.csv"), `${token},admin,admin,system:masters\n`);
    apiserver = spawnLogged(bins.apiserver, [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`, `--secure-port=${apiPort}`, "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
      `--cert-dir=${join(dir, "certs")}`, `--token-auth-file=${join(dir, "tokens.csv")}`, "--authorization-mode=RBAC",
      "--service-account-issuer=https://kubernetes.default.svc", `--service-account-key-file=${join(dir, "sa.pub")}`, `--service-account-signing-key-file=${join(dir, "sa.key")}`,
      "--service-cluster-ip-range=10.0.0.0/24", "--disable-admission-plugins=ServiceAccount", "--allow-privileged=true",
    ], logs, "kube-apiserver");
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "real", server: url, skipTLSVerify: true }],
      users: [{ name: "admin", token }], contexts: [{ name: "real", cluster: "real", user: "admin" }], currentContext: "real",
    });
    const kubeconfigPath = join(dir, "kubeconfig");
    writeFileSync(kubeconfigPath, kc.exportConfig());
    const core = kc.makeApiClient(CoreV1Api);
    // Ready once it serves a list. (No `default` ServiceAccount ever appears: that is
    // kube-controller-manager's work, and the ServiceAccount admission plugin is off.)
    await waitFor(async () => { try { await core.listNamespace(); return true; } catch { return false; } }, opts.timeoutMs ?? 90_000, 200);

    const raw = async (method: string, path: string, body?: unknown, contentType = "application/json"): Promise<{ status: number; text: string }> => {
      const res = await request(`${url}${path}`, {
        method: method as "GET", dispatcher, headers: { "content-type": contentType, authorization: `Bearer ${token}` },
        ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
      });
      return { status: res.statusCode, text: await res.body.text() };
    };
    const installCrds = async (crds: Array<Record<string, any>>, timeoutMs = 30_000): Promise<void> => {
      for (const crd of crds) {
        const { status, text } = await raw("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd);
        if (status !== 201) throw new Error(`creating CRD ${crd.metadata?.name}: HTTP ${status}: ${text}`);
      }
      const names = new Set(crds.map((c) => String(c.metadata.name)));
      const ext = kc.makeApiClient(ApiextensionsV1Api);
      await waitFor(async () => {
        const list = await ext.listCustomResourceDefinition();
        return list.items.filter((c) => names.has(c.metadata!.name!) && c.status?.conditions?.some((x) => x.type === "Established" && x.status === "True")).length === names.size;
      }, timeoutMs, 200);
    };
    const create = async (obj: Record<string, any>, opts: { ifMissing?: boolean } = {}): Promise<void> => {
      const path = collectionPath(obj);
      const { status, text } = await raw("POST", path, obj);
      if (status === 409 && opts.ifMissing) return;
      if (status !== 201) throw new Error(`creating ${obj.kind} ${obj.metadata?.namespace ?? ""}/${obj.metadata?.name}: HTTP ${status}: ${text}`);
    };
    const serviceAccountConfig = async (namespace: string, name: string): Promise<KubeConfig> => {
      const { status, text } = await raw("POST", `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`,
        { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 3600 } });
      if (status !== 201) throw new Error(`token for ServiceAccount ${namespace}/${name}: HTTP ${status}: ${text}`);
      const sa = new KubeConfig();
      sa.loadFromOptions({
        clusters: [{ name: "real", server: url, skipTLSVerify: true }],
        users: [{ name, token: JSON.parse(text).status.token }], contexts: [{ name: "real", cluster: "real", user: name }], currentContext: "real",
      });
      return sa;
    };
    return { url, token, kc, kubeconfigPath, logs, raw, installCrds, create, serviceAccountConfig, stop };
  } catch (err) {
    const tail = logs.join("").slice(-3000);
    await stop();
    throw new Error(`${String(err)}\n${tail}`);
  }
}
