// The Kubernetes source against a real kube-apiserver and etcd (built from their Go modules by
// scripts/build-kube-apiserver.sh): our CRDs install, the seed's InferencePool and InferenceModel
// are created as written, Pods get IPs through the status subresource, informers follow changes,
// and the InferencePool status written by infergate reads back from the API server.
import assert from "node:assert/strict";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { Agent, request } from "undici";
import { parseAllDocuments } from "yaml";
import type { RoutingConfig } from "../../extension-server/src/config/routing-config.ts";
import { KubeSource } from "../../extension-server/src/config/kube-source.ts";
import { waitFor } from "../support/stack.ts";

const repo = new URL("../..", import.meta.url).pathname;
const GROUP = "inference.networking.x-k8s.io";
const ETCD_PORT = 23791;
const API_PORT = 26443;
const TOKEN = "infergate-test-token";

function start(bin: string, args: string[], log: string[]): ChildProcess {
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
  const keep = (c: Buffer) => { log.push(c.toString()); if (log.length > 200) log.shift(); };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  return child;
}

function stop(child?: ChildProcess): void {
  if (child?.pid) { try { process.kill(-child.pid, "SIGKILL"); } catch { /* gone */ } }
}

describe("Kubernetes source against a real kube-apiserver", () => {
  const dir = mkdtempSync(join(tmpdir(), "infergate-kube-"));
  const logs: string[] = [];
  let etcd: ChildProcess | undefined;
  let apiserver: ChildProcess | undefined;
  let kc: KubeConfig;
  let source: KubeSource | undefined;
  const configs: RoutingConfig[] = [];

  before(async () => {
    // scripts/test-e2e.sh builds them before entering its network namespace (no network inside).
    const [apiserverBin, etcdBin] = process.env.KUBE_APISERVER_BIN && process.env.ETCD_BIN
      ? [process.env.KUBE_APISERVER_BIN, process.env.ETCD_BIN]
      : execFileSync("bash", [join(repo, "scripts/build-kube-apiserver.sh")], { encoding: "utf8" }).trim().split("\n");
    etcd = start(etcdBin!, ["--data-dir", join(dir, "etcd"), "--listen-client-urls", `http://127.0.0.1:${ETCD_PORT}`, "--advertise-client-urls", `http://127.0.0.1:${ETCD_PORT}`,
      "--listen-peer-urls", "http://127.0.0.1:23801", "--initial-advertise-peer-urls", "http://127.0.0.1:23801", "--initial-cluster", "default=http://127.0.0.1:23801"], logs);
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048, publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs8", format: "pem" } });
    writeFileSync(join(dir, "sa.pub"), publicKey);
    writeFileSync(join(dir, "sa.key"), privateKey);
    writeFileSync(join(dir, "tokens.csv"), `${TOKEN},admin,admin,system:masters\n`);
    apiserver = start(apiserverBin!, [
      `--etcd-servers=http://127.0.0.1:${ETCD_PORT}`, `--secure-port=${API_PORT}`, "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
      `--cert-dir=${join(dir, "certs")}`, `--token-auth-file=${join(dir, "tokens.csv")}`, "--authorization-mode=RBAC",
      "--service-account-issuer=https://kubernetes.default.svc", `--service-account-key-file=${join(dir, "sa.pub")}`, `--service-account-signing-key-file=${join(dir, "sa.key")}`,
      "--service-cluster-ip-range=10.0.0.0/24", "--disable-admission-plugins=ServiceAccount", "--allow-privileged=true",
    ], logs);
    kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "real", server: `https://127.0.0.1:${API_PORT}`, skipTLSVerify: true }],
      users: [{ name: "admin", token: TOKEN }], contexts: [{ name: "real", cluster: "real", user: "admin" }], currentContext: "real",
    });
    const core = kc.makeApiClient(CoreV1Api);
    await waitFor(async () => { try { await core.listNamespace(); return true; } catch { return false; } }, 90_000, 500)
      .catch((err) => { throw new Error(`${String(err)}\n${logs.join("").slice(-3000)}`); });
    await waitFor(async () => { try { await core.readNamespacedServiceAccount({ name: "default", namespace: "default" }); return true; } catch { return false; } }, 30_000, 500).catch(() => undefined);
  });

  after(async () => {
    await source?.stop();
    stop(apiserver);
    stop(etcd);
  });

  it("installs infergate's CRDs", async () => {
    const ext = kc.makeApiClient(ApiextensionsV1Api);
    // Posted as raw JSON, as kubectl would: client-node's typed model would drop the
    // `x-kubernetes-*` schema extensions it does not map.
    const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
    for (const doc of parseAllDocuments(readFileSync(join(repo, "manifests/kubernetes/crds.yaml"), "utf8"))) {
      const res = await request(`https://127.0.0.1:${API_PORT}/apis/apiextensions.k8s.io/v1/customresourcedefinitions`, {
        method: "POST", dispatcher, body: JSON.stringify(doc.toJS()), headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
      });
      const answer = await res.body.text();
      assert.equal(res.statusCode, 201, answer);
    }
    await dispatcher.close();
    await waitFor(async () => {
      const crds = await ext.listCustomResourceDefinition();
      return crds.items.filter((c) => c.spec.group === GROUP && c.status?.conditions?.some((x) => x.type === "Established" && x.status === "True")).length === 2;
    }, 30_000, 200);
  });

  it("reads the seed's resources and Pods created through the API, and follows changes", async () => {
    const custom = kc.makeApiClient(CustomObjectsApi);
    const core = kc.makeApiClient(CoreV1Api);
    const seed = parseAllDocuments(readFileSync(join(repo, "manifests/kubernetes/seed.yaml"), "utf8")).map((d) => d.toJS());
    for (const obj of seed.filter((o) => o.apiVersion.startsWith(GROUP))) {
      await custom.createNamespacedCustomObject({ group: GROUP, version: "v1alpha1", namespace: "default", plural: `${obj.kind.toLowerCase()}s`, body: obj });
    }
    for (const [i, ip] of ["10.1.0.11", "10.1.0.12"].entries()) {
      const name = `qwq-32b-${i}`;
      await core.createNamespacedPod({ namespace: "default", body: { metadata: { name, labels: { app: "qwq-32b" } }, spec: { containers: [{ name: "vllm", image: "vllm/vllm-openai" }] } } });
      await core.patchNamespacedPodStatus({ name, namespace: "default", body: { status: { phase: "Running", podIP: ip, podIPs: [{ ip }], conditions: [{ type: "Ready", status: "True" }] } } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
    }
    source = new KubeSource(kc);
    await source.start({ onConfig: (c) => configs.push(c), onRejected: () => undefined, log: (m) => logs.push(`[infergate] ${m}\n`) });
    await waitFor(async () => configs.at(-1)?.pools[0]?.endpoints.length === 2, 10_000);
    const config = configs.at(-1)!;
    assert.deepEqual(config.pools[0]!.endpoints.map((e) => `${e.ip}:${e.port}`), ["10.1.0.11:8000", "10.1.0.12:8000"]);
    assert.deepEqual(config.pools[0]!.attachTo, { name: "inference-gateway", port: 8081 });
    assert.deepEqual(config.models[0]!.targets, [{ name: "qwq-32b", weight: 100 }]);

    await custom.patchNamespacedCustomObject({ group: GROUP, version: "v1alpha1", namespace: "default", plural: "inferencemodels", name: "inferencemodel-sample",
      body: { spec: { targetModels: [{ name: "qwq-32b", weight: 90 }, { name: "qwq-32b-canary", weight: 10 }] } } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
    await waitFor(async () => configs.at(-1)!.models[0]!.targets.length === 2, 10_000);
    await core.deleteNamespacedPod({ name: "qwq-32b-1", namespace: "default", gracePeriodSeconds: 0 });
    await waitFor(async () => configs.at(-1)!.pools[0]!.endpoints.length === 1, 10_000);
  });

  it("writes InferencePool status conditions the API server accepts", async () => {
    const custom = kc.makeApiClient(CustomObjectsApi);
    await waitFor(async () => {
      const pool = await custom.getNamespacedCustomObject({ group: GROUP, version: "v1alpha1", namespace: "default", plural: "inferencepools", name: "reasoning-pool" }) as any;
      const conditions = pool.status?.parent?.[0]?.conditions ?? [];
      return conditions.some((c: any) => c.type === "Accepted" && c.status === "True");
    }, 10_000, 200).catch(async (err) => {
      const pool = await custom.getNamespacedCustomObject({ group: GROUP, version: "v1alpha1", namespace: "default", plural: "inferencepools", name: "reasoning-pool" });
      throw new Error(`${String(err)}\n${JSON.stringify(pool)}\n${logs.filter((l) => l.startsWith("[infergate]")).join("")}`);
    });
  });
});
