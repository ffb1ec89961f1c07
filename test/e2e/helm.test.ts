// The Helm chart (charts/infergate) with Helm built from its Go module (scripts/build-helm.sh):
// - the raw manifests in manifests/kubernetes are what the chart renders (scripts/render-manifests.ts --check);
// - `helm lint`, strict, with every example values file, and the values schema refusing bad tuning;
// - `helm template` with each documented values combination (charts/infergate/examples), with what
//   each one must change;
// - every object of every combination accepted by the real kube-apiserver's server-side validation
//   (a dry-run create with strict field validation), against the chart's CRDs, the Gateway API's,
//   Envoy Gateway's EnvoyExtensionPolicy and the Prometheus Operator's;
// - `helm install`, `upgrade` and `uninstall` against that API server: the chart's CRDs, then the
//   seed's InferencePool and InferenceModel and the newer kinds against them; the NOTES' Envoy
//   Gateway values merged by Envoy Gateway's own chart; an upgrade changes the replicas, the
//   scheduler ConfigMap (and so the pod template) and the RBAC's scope, and nothing else; uninstall
//   leaves nothing of the release behind, but the CRDs (Helm never deletes crds/) and the
//   namespace --create-namespace made.
// No kubelet, scheduler or controller-manager runs, so no pod starts. What a pod would do is done by
// hand: the extension server runs here with the Deployment's arguments, the ConfigMap and the Secret
// as the pod would mount them, and the ServiceAccount's token, so the chart's RBAC authorizes it.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse, parseAllDocuments } from "yaml";
import { parseSchedulerConfig } from "../../extension-server/src/config/routing-config.ts";
import { createTestCa } from "../support/certs.ts";
import { gatewayApiCrd, inferenceExtensionCrd, startKubeApiServer, type KubeApiServer } from "../support/kube-apiserver.ts";
import { waitFor } from "../support/stack.ts";
import { scratchDir } from "../support/scratch-dir.ts";

const repo = new URL("../..", import.meta.url).pathname;
const chart = join(repo, "charts/infergate");
const NS = "infergate-system";
const MONITORING = ["--api-versions", "monitoring.coreos.com/v1/ServiceMonitor", "--api-versions", "monitoring.coreos.com/v1/PrometheusRule"];
type Obj = Record<string, any>;

const helmBin = (): string => process.env.HELM_BIN ?? execFileSync("bash", [join(repo, "scripts/build-helm.sh")], { encoding: "utf8" }).trim();
const deps = (): { promOperatorCrds: string; egModule: string } => {
  if (process.env.PROMETHEUS_OPERATOR_CRDS && process.env.EG_MODULE_DIR) return { promOperatorCrds: process.env.PROMETHEUS_OPERATOR_CRDS, egModule: process.env.EG_MODULE_DIR };
  const [a, b] = execFileSync("bash", [join(repo, "scripts/chart-test-deps.sh")], { encoding: "utf8" }).trim().split("\n");
  return { promOperatorCrds: a!, egModule: b! };
};

describe("Helm chart", () => {
  const home = scratchDir("infergate-helm");
  let kubeconfig = join(home, "no-cluster");
  const env = () => ({ ...process.env, KUBECONFIG: kubeconfig, HELM_CACHE_HOME: join(home, "cache"), HELM_CONFIG_HOME: join(home, "config"), HELM_DATA_HOME: join(home, "data") });
  /** Runs helm; returns stdout, or throws with its stderr. */
  const helm = (...args: string[]): string => {
    try {
      return execFileSync(helmBin(), args, { encoding: "utf8", env: env(), stdio: ["ignore", "pipe", "pipe"] });
    } catch (err) {
      throw new Error(`helm ${args.join(" ")}: ${(err as { stderr?: string }).stderr ?? String(err)}`);
    }
  };
  /** helm's exit status and output, for commands expected to fail. */
  const helmFails = (...args: string[]): string => {
    try {
      execFileSync(helmBin(), args, { encoding: "utf8", env: env(), stdio: ["ignore", "pipe", "pipe"] });
    } catch (err) {
      return `${(err as { stdout?: string }).stdout ?? ""}${(err as { stderr?: string }).stderr ?? ""}`;
    }
    assert.fail(`helm ${args.join(" ")} succeeded`);
  };
  const template = (...args: string[]): Obj[] =>
    parseAllDocuments(helm("template", "infergate", chart, "-n", NS, ...args)).map((d) => d.toJS()).filter((d) => d);
  const example = (name: string) => ["-f", join(chart, "examples", name)];
  const kinds = (objs: Obj[]) => objs.map((o) => `${o.kind}${o.metadata.namespace ? ` ${o.metadata.namespace}` : ""}`).sort();
  const one = (objs: Obj[], kind: string): Obj => {
    const found = objs.filter((o) => o.kind === kind);
    assert.equal(found.length, 1, `one ${kind}`);
    return found[0]!;
  };
  const args = (objs: Obj[]): string[] => one(objs, "Deployment").spec.template.spec.containers[0].args;
  const scheduler = (objs: Obj[]) => parseSchedulerConfig(one(objs, "ConfigMap").data["scheduler.yaml"], "scheduler.yaml");
  const notesValues = (notes: string): Obj => parse(/^# --- Envoy Gateway values ---\n([^]*?)^# --- end ---$/m.exec(notes)![1]!);

  after(() => rmSync(home, { recursive: true, force: true }));

  it("renders the raw manifests in manifests/kubernetes (they are generated from the chart, and must not drift)", () => {
    try {
      execFileSync(process.execPath, ["--import", "tsx", join(repo, "scripts/render-manifests.ts"), "--check"], { cwd: repo, env: { ...env(), HELM_BIN: helmBin() }, stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
    } catch (err) {
      assert.fail((err as { stderr?: string }).stderr ?? String(err));
    }
  });

  it("carries the Inference Extension's v1 InferencePool CRD verbatim from its v1.5.0 module", () => {
    const ours = parse(readFileSync(join(chart, "crds/inference.networking.k8s.io_inferencepools.yaml"), "utf8"));
    assert.deepEqual(ours, inferenceExtensionCrd("inference.networking.k8s.io_inferencepools"));
  });

  it("passes helm lint --strict, with every example values file", () => {
    assert.match(helm("lint", "--strict", chart), /1 chart\(s\) linted, 0 chart\(s\) failed/);
    for (const file of readdirSync(join(chart, "examples"))) assert.match(helm("lint", "--strict", chart, ...example(file)), /0 chart\(s\) failed/, file);
  });

  it("refuses, through values.schema.json, scheduler settings the server would refuse, a misspelt key, and an unknown log level", () => {
    assert.match(helmFails("lint", chart, "--set", "scheduler.scrape.intervalMs=1"), /intervalMs[^]*minimum|minimum[^]*intervalMs|must be >= 5/);
    assert.match(helmFails("template", "x", chart, "--set", "scheduler.picker.scoreWieght=1"), /scoreWieght/);
    assert.match(helmFails("template", "x", chart, "--set", "logLevel=debug"), /logLevel/);
    assert.match(helmFails("template", "x", chart, "--set", "replica=2"), /replica/);
  });

  it("default values: cluster-wide RBAC, mutual TLS from the Secret, the Service on every port the server serves, the scheduler ConfigMap", () => {
    const objs = template();
    assert.deepEqual(kinds(objs), ["ClusterRole", "ClusterRoleBinding", "ConfigMap infergate-system", "Deployment infergate-system", "NetworkPolicy infergate-system", "Service infergate-system", "ServiceAccount infergate-system"]);
    const a = args(objs);
    assert.equal(a[0], "kubernetes");
    assert.ok(!a.some((x) => x.startsWith("--watch-namespaces") || x === "--insecure"), a.join(" "));
    for (const flag of ["--tls-cert=/etc/infergate/tls/tls.crt", "--tls-key=/etc/infergate/tls/tls.key", "--tls-server-ca=/etc/infergate/tls/ca.crt", "--tls-ca=/etc/infergate/tls/client-ca.crt",
      "--envoy-cert-dir=/certs", "--xds-advertise=infergate.infergate-system.svc.cluster.local:18000", "--module-advertise=infergate.infergate-system.svc.cluster.local",
      "--scheduler-config=/etc/infergate/scheduler/scheduler.yaml", "--log-level=info"]) assert.ok(a.includes(flag), flag);
    // The Service exposes each port the server listens on for others (debug binds 127.0.0.1 only).
    const listened = Object.fromEntries(a.filter((x) => /^--(hooks|xds|module|metrics)-port=/.test(x)).map((x) => [x.slice(2).split("-port=")[0], Number(x.split("=")[1])]));
    assert.deepEqual(listened, { hooks: 5005, xds: 18000, module: 18001, metrics: 9090 });
    const service = one(objs, "Service");
    assert.deepEqual(Object.fromEntries(service.spec.ports.map((p: Obj) => [p.name, p.port])), listened);
    assert.deepEqual(service.spec.selector, one(objs, "Deployment").spec.selector.matchLabels);
    const pod = one(objs, "Deployment").spec.template.spec;
    assert.deepEqual(pod.volumes.find((v: Obj) => v.name === "tls").secret, { secretName: "infergate-tls" });
    assert.deepEqual(pod.volumes.find((v: Obj) => v.name === "scheduler").configMap, { name: "infergate-scheduler" });
    assert.equal(pod.serviceAccountName, "infergate");
    assert.deepEqual(one(objs, "ClusterRoleBinding").subjects, [{ kind: "ServiceAccount", name: "infergate", namespace: NS }]);
    assert.equal(scheduler(objs).scrape.intervalMs, 50);
    // No Prometheus Operator kinds where the cluster does not serve them.
    assert.ok(!objs.some((o) => /ServiceMonitor|PrometheusRule|PodDisruptionBudget|EnvoyExtensionPolicy/.test(o.kind)));
  });

  it("examples/namespaced.yaml: a Role and RoleBinding in each watched namespace, --watch-namespaces, no ClusterRole", () => {
    const objs = template(...example("namespaced.yaml"));
    assert.deepEqual(kinds(objs).filter((k) => /Role/.test(k)), ["Role team-a", "Role team-b", "RoleBinding team-a", "RoleBinding team-b"]);
    assert.ok(args(objs).includes("--watch-namespaces=team-a,team-b"));
    assert.deepEqual(objs.filter((o) => o.kind === "Role").map((r) => r.rules), [template().find((o) => o.kind === "ClusterRole")!.rules, template().find((o) => o.kind === "ClusterRole")!.rules]);
  });

  it("examples/insecure.yaml: --insecure, no TLS flags or volume, no NetworkPolicy", () => {
    const objs = template(...example("insecure.yaml"));
    const a = args(objs);
    assert.ok(a.includes("--insecure"));
    assert.ok(!a.some((x) => x.startsWith("--tls-") || x.startsWith("--envoy-cert-dir")), a.join(" "));
    assert.ok(!one(objs, "Deployment").spec.template.spec.volumes.some((v: Obj) => v.name === "tls"));
    assert.ok(!objs.some((o) => o.kind === "NetworkPolicy"));
  });

  it("examples/ha.yaml: replicas, a PodDisruptionBudget over the same pods, resources and anti-affinity", () => {
    const objs = template(...example("ha.yaml"));
    const deployment = one(objs, "Deployment");
    assert.equal(deployment.spec.replicas, 3);
    const pdb = one(objs, "PodDisruptionBudget");
    assert.equal(pdb.spec.maxUnavailable, 1);
    assert.deepEqual(pdb.spec.selector.matchLabels, deployment.spec.selector.matchLabels);
    assert.deepEqual(deployment.spec.template.spec.containers[0].resources, { requests: { cpu: "1", memory: "512Mi" }, limits: { memory: "1Gi" } });
    assert.ok(deployment.spec.template.spec.affinity.podAntiAffinity);
  });

  it("examples/tuning.yaml: the scheduler settings reach the ConfigMap the server reads, the pod template changes with them, and --log-level=warn", () => {
    const objs = template(...example("tuning.yaml"));
    const s = scheduler(objs);
    assert.deepEqual([s.scrape.intervalMs, s.scrape.timeoutMs, s.scrape.staleAfterMs, s.picker.scoreWeight, s.picker.nearBestPercent, s.saturation.queueThreshold], [100, 500, 1000, 80, 10, 8]);
    assert.ok(args(objs).includes("--log-level=warn"));
    const checksum = (o: Obj[]) => one(o, "Deployment").spec.template.metadata.annotations["infergate.io/scheduler-config-sha256"];
    assert.notEqual(checksum(objs), checksum(template()));
  });

  it("examples/extension-policy.yaml: an EnvoyExtensionPolicy in the route's namespace naming the module's URL and sha256 (required)", () => {
    const policy = one(template(...example("extension-policy.yaml")), "EnvoyExtensionPolicy");
    assert.equal(policy.metadata.namespace, "default");
    assert.deepEqual(policy.spec.targetRefs, [{ group: "gateway.networking.k8s.io", kind: "HTTPRoute", name: "inference-route" }]);
    assert.equal(policy.spec.wasm[0].rootID, "infergate");
    assert.equal(policy.spec.wasm[0].code.http.url, "http://infergate.infergate-system.svc.cluster.local:18001/filter/infergate.wasm");
    assert.equal(policy.spec.wasm[0].code.http.sha256, "9f2c4e7d1b3a5c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6");
    assert.match(helmFails("template", "infergate", chart, "--set", "envoyExtensionPolicy.enabled=true"), /envoyExtensionPolicy\.sha256/);
  });

  it("examples/gateway-namespaces.yaml: the NetworkPolicy admits Envoys in those namespaces to xDS and the module", () => {
    const policy = one(template(...example("gateway-namespaces.yaml")), "NetworkPolicy");
    const envoys = policy.spec.ingress[1];
    assert.deepEqual(envoys.from.map((f: Obj) => f.namespaceSelector.matchLabels["kubernetes.io/metadata.name"]), ["envoy-gateway-system", "team-a", "team-b"]);
    assert.deepEqual(envoys.ports, [{ port: 18000 }, { port: 18001 }]);
  });

  it("examples/monitoring.yaml: a ServiceMonitor and the alerting rules as a PrometheusRule, only where monitoring.coreos.com/v1 is served", () => {
    assert.ok(!template(...example("monitoring.yaml")).some((o) => o.apiVersion === "monitoring.coreos.com/v1"));
    const objs = template(...example("monitoring.yaml"), ...MONITORING);
    const monitor = one(objs, "ServiceMonitor");
    assert.equal(monitor.metadata.labels.release, "prometheus");
    assert.deepEqual(monitor.spec.selector.matchLabels, one(objs, "Service").spec.selector);
    assert.equal(monitor.spec.endpoints[0].interval, "30s");
    assert.equal(monitor.spec.endpoints[0].port, "metrics");
    const rules = parse(readFileSync(join(repo, "manifests/prometheus/infergate-alerts.yaml"), "utf8"));
    assert.deepEqual(one(objs, "PrometheusRule").spec.groups, rules.groups, "the rules promtool tests, with their {{ $labels }} templates intact");
    assert.ok(!template(...example("monitoring.yaml"), ...MONITORING, "--set", "monitoring.prometheusRule.enabled=false").some((o) => o.kind === "PrometheusRule"));
  });

  describe("against a real kube-apiserver (no kubelet: no pod runs)", () => {
    let api: KubeApiServer;
    const work = join(home, "work");

    before(async () => {
      api = await startKubeApiServer();
      kubeconfig = api.kubeconfigPath;
      mkdirSync(work, { recursive: true });
    });
    after(async () => { await api?.stop(); });

    const pathOf = (o: Obj): string => {
      const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : ["", o.apiVersion];
      const plural = ({ NetworkPolicy: "networkpolicies", PodDisruptionBudget: "poddisruptionbudgets", EnvoyExtensionPolicy: "envoyextensionpolicies", GatewayClass: "gatewayclasses" } as Record<string, string>)[o.kind] ?? `${o.kind.toLowerCase()}s`;
      const base = group ? `/apis/${group}/${version}` : `/api/${version}`;
      return o.metadata.namespace ? `${base}/namespaces/${o.metadata.namespace}/${plural}` : `${base}/${plural}`;
    };
    const get = async (o: Obj) => api.raw("GET", `${pathOf(o)}/${o.metadata.name}`);
    const rendered = (manifest: string): Obj[] => parseAllDocuments(manifest).map((d) => d.toJS()).filter((d) => d);

    it("installs the Gateway API's, Envoy Gateway's EnvoyExtensionPolicy and the Prometheus Operator's CRDs the chart's objects refer to", async () => {
      const { promOperatorCrds, egModule } = deps();
      const file = (path: string) => parseAllDocuments(readFileSync(path, "utf8")).map((d) => d.toJS()).find((d) => d?.kind === "CustomResourceDefinition");
      await api.installCrds([
        ...["gatewayclasses", "gateways", "httproutes", "referencegrants"].map(gatewayApiCrd),
        file(join(egModule, "charts/gateway-helm/charts/crds/crds/generated/gateway.envoyproxy.io_envoyextensionpolicies.yaml")),
        file(join(promOperatorCrds, "monitoring.coreos.com_servicemonitors.yaml")),
        file(join(promOperatorCrds, "monitoring.coreos.com_prometheusrules.yaml")),
      ], 60_000);
      for (const name of [NS, "team-a", "team-b"]) await api.create({ apiVersion: "v1", kind: "Namespace", metadata: { name } });
    });

    it("accepts every object of every documented values combination (server-side dry run, strict field validation)", async () => {
      const combos: Array<[string, string[]]> = [["default", []], ["default, monitoring served", MONITORING],
        ...readdirSync(join(chart, "examples")).map((f): [string, string[]] => [f, [...example(f), ...MONITORING]])];
      for (const [name, extra] of combos) {
        for (const o of template(...extra)) {
          const res = await api.raw("POST", `${pathOf(o)}?dryRun=All&fieldValidation=Strict`, o);
          assert.equal(res.status, 201, `${name}: ${o.kind} ${o.metadata.name}: ${res.text}`);
        }
      }
    });

    it("helm install: the chart's CRDs first, then its objects (ServiceMonitor and PrometheusRule too, as the cluster serves them), each one readable", async () => {
      // The Secret the pods would mount (mutual TLS); Envoy Gateway's CA signs client certificates.
      const ca = createTestCa("infergate-ca");
      const egCa = createTestCa("envoy-gateway-ca");
      const server = ca.issue("infergate", { dns: ["infergate.infergate-system.svc.cluster.local", "localhost"] });
      const b64 = (f: string) => readFileSync(f).toString("base64");
      await api.create({ apiVersion: "v1", kind: "Secret", metadata: { name: "infergate-tls", namespace: NS },
        data: { "tls.crt": b64(server.cert), "tls.key": b64(server.key), "ca.crt": b64(ca.cert), "client-ca.crt": b64(egCa.cert) } });

      const out = helm("install", "infergate", chart, "-n", NS, ...example("monitoring.yaml"));
      assert.match(out, /STATUS: deployed/);
      // crds/: created before the templates, Established.
      const crds = parseAllDocuments(helm("show", "crds", chart)).map((d) => d.toJS()).filter((d) => d);
      assert.deepEqual(crds.map((c) => c.metadata.name).sort(), ["inferencemodelrewrites.inference.networking.x-k8s.io", "inferencemodels.inference.networking.x-k8s.io",
        "inferenceobjectives.inference.networking.x-k8s.io", "inferencepools.inference.networking.k8s.io", "inferencepools.inference.networking.x-k8s.io"]);
      for (const crd of crds) {
        const res = await api.raw("GET", `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`);
        assert.equal(res.status, 200, crd.metadata.name);
        assert.ok(JSON.parse(res.text).status.conditions.some((c: Obj) => c.type === "Established" && c.status === "True"), crd.metadata.name);
      }
      const objs = rendered(helm("get", "manifest", "infergate", "-n", NS));
      assert.deepEqual(kinds(objs), ["ClusterRole", "ClusterRoleBinding", "ConfigMap infergate-system", "Deployment infergate-system", "NetworkPolicy infergate-system",
        "PrometheusRule infergate-system", "Service infergate-system", "ServiceAccount infergate-system", "ServiceMonitor infergate-system"]);
      for (const o of objs) assert.equal((await get(o)).status, 200, `${o.kind} ${o.metadata.name}`);
    });

    it("the seed's InferencePool and InferenceModel, and an InferenceObjective, an InferenceModelRewrite and a v1 InferencePool, are accepted against the chart's CRDs", async () => {
      const seed = parseAllDocuments(readFileSync(join(repo, "manifests/kubernetes/seed.yaml"), "utf8")).map((d) => d.toJS()).filter((d) => d);
      // The seed's GatewayClass, Gateway and HTTPRoutes against the Gateway API's CRDs, its pool and model as written.
      for (const o of seed) {
        const res = await api.raw("POST", `${pathOf({ ...o, metadata: { ...o.metadata, namespace: o.kind === "GatewayClass" ? undefined : "default" } })}?fieldValidation=Strict`, o);
        assert.equal(res.status, 201, `${o.kind} ${o.metadata.name}: ${res.text}`);
      }
      const X = "inference.networking.x-k8s.io";
      for (const o of [
        { apiVersion: `${X}/v1alpha2`, kind: "InferenceObjective", metadata: { name: "batch", namespace: "default" }, spec: { priority: -2, poolRef: { name: "reasoning-pool" } } },
        { apiVersion: `${X}/v1alpha2`, kind: "InferenceModelRewrite", metadata: { name: "assistant", namespace: "default" },
          spec: { poolRef: { name: "reasoning-pool" }, rules: [{ matches: [{ model: { value: "assistant" } }], targets: [{ modelRewrite: "qwq-32b", weight: 1 }] }] } },
        { apiVersion: "inference.networking.k8s.io/v1", kind: "InferencePool", metadata: { name: "v1-pool", namespace: "default" },
          spec: { selector: { matchLabels: { app: "v1" } }, targetPorts: [{ number: 8000 }], endpointPickerRef: { name: "epp", port: { number: 9002 } } } },
      ]) {
        const res = await api.raw("POST", `${pathOf(o)}?fieldValidation=Strict`, o);
        assert.equal(res.status, 201, `${o.kind} ${o.metadata.name}: ${res.text}`);
      }
      // And refused where they break the CRDs' schemas.
      const bad = await api.raw("POST", `/apis/${X}/v1alpha2/namespaces/default/inferenceobjectives`, { apiVersion: `${X}/v1alpha2`, kind: "InferenceObjective", metadata: { name: "bad" }, spec: { priority: "high" } });
      assert.equal(bad.status, 422, bad.text);
      // Pods for the pool (their IPs through the status subresource, as no kubelet runs).
      for (const [i, ip] of ["10.1.0.11", "10.1.0.12"].entries()) {
        const name = `qwq-32b-${i}`;
        await api.create({ apiVersion: "v1", kind: "Pod", metadata: { name, namespace: "default", labels: { app: "qwq-32b" } }, spec: { containers: [{ name: "vllm", image: "vllm/vllm-openai" }] } });
        const res = await api.raw("PATCH", `/api/v1/namespaces/default/pods/${name}/status`, { status: { phase: "Running", podIP: ip, podIPs: [{ ip }], conditions: [{ type: "Ready", status: "True" }] } }, "application/merge-patch+json");
        assert.equal(res.status, 200, res.text);
      }
    });

    it("the NOTES (helm needs a cluster for them): examples/insecure.yaml gives Envoy Gateway's extensionManager no tls; another release name, its own Service", () => {
      const notes = (...extra: string[]) => notesValues(String(JSON.parse(helm("install", ...extra, chart, "-n", NS, "--dry-run=client", "-o", "json")).info.notes)).config.envoyGateway.extensionManager;
      const insecure = notes("insecure", ...example("insecure.yaml"));
      assert.equal(insecure.service.tls, undefined);
      assert.deepEqual(insecure.service.fqdn, { hostname: "insecure-infergate.infergate-system.svc.cluster.local", port: 5005 });
      assert.deepEqual(notes("edge", "--set", "ports.hooks=5006").service.fqdn, { hostname: "edge-infergate.infergate-system.svc.cluster.local", port: 5006 });
    });

    it("the NOTES' Envoy Gateway values merge into Envoy Gateway v1.9.0's own chart as its extensionManager, the one manifests/kubernetes/envoy-gateway-config.yaml has", () => {
      const values = notesValues(helm("get", "notes", "infergate", "-n", NS));
      const manager = values.config.envoyGateway.extensionManager;
      assert.deepEqual(manager.service, { fqdn: { hostname: "infergate.infergate-system.svc.cluster.local", port: 5005 },
        tls: { certificateRef: { name: "infergate-ca", namespace: "envoy-gateway-system" }, clientCertificateRef: { name: "envoy-gateway", namespace: "envoy-gateway-system" } } });
      const { egModule } = deps();
      const egChart = join(work, "gateway-helm");
      cpSync(join(egModule, "charts/gateway-helm"), egChart, { recursive: true });
      execFileSync("chmod", ["-R", "u+w", egChart]);
      writeFileSync(join(egChart, "values.yaml"), readFileSync(join(egChart, "values.tmpl.yaml"), "utf8")
        .replace("${GatewayImage}", "docker.io/envoyproxy/gateway:v1.9.0").replace("${GatewayImagePullPolicy}", "IfNotPresent"));
      const valuesFile = join(work, "eg-values.yaml");
      writeFileSync(valuesFile, /^# --- Envoy Gateway values ---\n([^]*?)^# --- end ---$/m.exec(helm("get", "notes", "infergate", "-n", NS))![1]!);
      const config = rendered(helm("template", "eg", egChart, "-n", "envoy-gateway-system", "-f", valuesFile, "--show-only", "templates/envoy-gateway-config.yaml"))[0]!;
      const envoyGateway = parse(config.data["envoy-gateway.yaml"]);
      assert.deepEqual(envoyGateway.extensionManager, manager);
      const raw = parse(rendered(readFileSync(join(repo, "manifests/kubernetes/envoy-gateway-config.yaml"), "utf8"))[0]!.data["envoy-gateway.yaml"]);
      assert.deepEqual(raw.extensionManager, manager);
      assert.equal(envoyGateway.provider.type, "Kubernetes", "Envoy Gateway's own defaults stay");
      assert.equal(envoyGateway.gateway.controllerName, "gateway.envoyproxy.io/gatewayclass-controller");
    });

    /** Runs the extension server as the Deployment's pod would: its arguments, the ConfigMap and the
     * Secret where the pod mounts them (here: files), the ServiceAccount's token. Returns the
     * snapshot it serves once `ready` holds, and its log. */
    const runAsPod = async (ready: (snapshot: string) => boolean): Promise<{ snapshot: string; log: string }> => {
      const deployment = JSON.parse((await api.raw("GET", `/apis/apps/v1/namespaces/${NS}/deployments/infergate`)).text);
      const container = deployment.spec.template.spec.containers[0];
      const mounts = join(work, "mounts");
      rmSync(mounts, { recursive: true, force: true });
      for (const volume of deployment.spec.template.spec.volumes) {
        const mount = container.volumeMounts.find((m: Obj) => m.name === volume.name);
        const dir = join(mounts, mount.mountPath);
        mkdirSync(dir, { recursive: true });
        if (volume.configMap) {
          const cm = JSON.parse((await api.raw("GET", `/api/v1/namespaces/${NS}/configmaps/${volume.configMap.name}`)).text);
          for (const [k, v] of Object.entries(cm.data)) writeFileSync(join(dir, k), String(v));
        }
        if (volume.secret) {
          const secret = JSON.parse((await api.raw("GET", `/api/v1/namespaces/${NS}/secrets/${volume.secret.secretName}`)).text);
          for (const [k, v] of Object.entries(secret.data)) writeFileSync(join(dir, k), Buffer.from(String(v), "base64"));
        }
      }
      const podArgs = (container.args as string[]).map((a) => a.replace(/=(\/etc\/infergate\/)/, `=${mounts}$1`));
      const sa = await api.serviceAccountConfig(NS, deployment.spec.template.spec.serviceAccountName);
      const saConfig = join(work, "sa-kubeconfig");
      writeFileSync(saConfig, sa.exportConfig());
      const child = spawn(process.execPath, ["--import", "tsx", join(repo, "extension-server/src/main.ts"), ...podArgs],
        { cwd: repo, env: { ...process.env, KUBECONFIG: saConfig }, stdio: ["ignore", "ignore", "pipe"] });
      let log = "";
      child.stderr!.on("data", (c) => (log += c));
      const exited = new Promise((r) => child.once("exit", r));
      let snapshot = "";
      const debugPort = Number(podArgs.find((a) => a.startsWith("--debug-port="))!.split("=")[1]);
      try {
        await waitFor(async () => {
          if (child.exitCode !== null) throw new Error(`the server exited: ${log}`);
          snapshot = await fetch(`http://127.0.0.1:${debugPort}/snapshot`).then((r) => r.text(), () => "");
          return ready(snapshot);
        }, 30_000, 200);
      } catch (err) {
        throw new Error(`${String(err)}\nsnapshot:\n${snapshot}\nlog:\n${log}`);
      } finally {
        child.kill("SIGTERM");
        await exited;
      }
      return { snapshot, log };
    };

    it("what the pod would do, done here: the server starts with the Deployment's arguments, the mounted ConfigMap and Secret and the ServiceAccount's RBAC, serves the seed's pool and writes its status", async () => {
      const accepted = async () => JSON.parse((await api.raw("GET", "/apis/inference.networking.x-k8s.io/v1alpha1/namespaces/default/inferencepools/reasoning-pool")).text)
        .status?.parent?.[0]?.conditions?.find((c: Obj) => c.type === "Accepted")?.status;
      let status: string | undefined;
      const { snapshot } = await runAsPod((snap) => {
        void accepted().then((a) => (status = a), () => undefined);
        return /pool default\/reasoning-pool/.test(snap) && status === "True";
      });
      assert.match(snapshot, /tuning score-weight 40\n/, "the scheduler ConfigMap's tuning is pushed (the defaults)");
      assert.equal(await accepted(), "True", "the pool's status, written through the chart's ClusterRole");
    });

    it("helm upgrade: replicas and the scheduler ConfigMap change (the pod template with it), the rest is left as it was", async () => {
      const before = Object.fromEntries(await Promise.all(rendered(helm("get", "manifest", "infergate", "-n", NS)).map(async (o) => [`${o.kind}/${o.metadata.name}`, JSON.parse((await get(o)).text)])));
      helm("upgrade", "infergate", chart, "-n", NS, "--reuse-values", "--set", "replicas=2", "--set", "scheduler.scrape.intervalMs=200", "--set", "scheduler.picker.scoreWeight=77");
      const deployment = JSON.parse((await api.raw("GET", `/apis/apps/v1/namespaces/${NS}/deployments/infergate`)).text);
      assert.equal(deployment.spec.replicas, 2);
      assert.equal(deployment.metadata.generation, before["Deployment/infergate"].metadata.generation + 1);
      const annotation = "infergate.io/scheduler-config-sha256";
      assert.notEqual(deployment.spec.template.metadata.annotations[annotation], before["Deployment/infergate"].spec.template.metadata.annotations[annotation], "a new pod template: the pods roll");
      const cm = JSON.parse((await api.raw("GET", `/api/v1/namespaces/${NS}/configmaps/infergate-scheduler`)).text);
      const s = parseSchedulerConfig(cm.data["scheduler.yaml"], "scheduler.yaml");
      assert.deepEqual([s.scrape.intervalMs, s.picker.scoreWeight], [200, 77]);
      for (const key of ["Service/infergate", "ServiceAccount/infergate", "ClusterRole/infergate", "ClusterRoleBinding/infergate", "NetworkPolicy/infergate", "ServiceMonitor/infergate", "PrometheusRule/infergate"]) {
        const [kind, name] = key.split("/");
        const now = JSON.parse((await get({ ...before[key], kind, metadata: { ...before[key].metadata, name } })).text);
        assert.equal(now.metadata.resourceVersion, before[key].metadata.resourceVersion, `${key} unchanged`);
      }
      // The server, started as the new pod would be, pushes the new tuning.
      await runAsPod((snap) => /tuning score-weight 77\n/.test(snap));
    });

    it("helm upgrade to a namespaced install: the ClusterRole and its binding go, a Role and RoleBinding per watched namespace come, with --watch-namespaces", async () => {
      helm("upgrade", "infergate", chart, "-n", NS, "--reuse-values", "--set", "watchNamespaces={default,team-a}");
      for (const path of ["/apis/rbac.authorization.k8s.io/v1/clusterroles/infergate", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/infergate"]) {
        assert.equal((await api.raw("GET", path)).status, 404, path);
      }
      for (const ns of ["default", "team-a"]) {
        for (const kind of ["roles", "rolebindings"]) assert.equal((await api.raw("GET", `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/${kind}/infergate`)).status, 200, `${kind} in ${ns}`);
      }
      const deployment = JSON.parse((await api.raw("GET", `/apis/apps/v1/namespaces/${NS}/deployments/infergate`)).text);
      assert.ok(deployment.spec.template.spec.containers[0].args.includes("--watch-namespaces=default,team-a"));
      // The Roles are enough: the server, as the pod would run it, still serves the seed's pool.
      const { log } = await runAsPod((snap) => /pool default\/reasoning-pool/.test(snap));
      assert.doesNotMatch(log, /forbidden|403/i);
      assert.match(helm("history", "infergate", "-n", NS), /^3\s/m);
    });

    it("helm uninstall leaves nothing of the release behind; the CRDs (Helm never deletes crds/) and the objects in them stay", async () => {
      const manifests = [1, 2, 3].flatMap((revision) => rendered(helm("get", "manifest", "infergate", "-n", NS, "--revision", String(revision))));
      helm("uninstall", "infergate", "-n", NS);
      for (const o of manifests) assert.equal((await get(o)).status, 404, `${o.kind} ${o.metadata.namespace ?? ""}/${o.metadata.name} is gone`);
      const selector = "labelSelector=app.kubernetes.io%2Finstance%3Dinfergate";
      for (const path of ["/api/v1/configmaps", "/api/v1/services", "/api/v1/serviceaccounts", "/apis/apps/v1/deployments", "/apis/rbac.authorization.k8s.io/v1/roles",
        "/apis/rbac.authorization.k8s.io/v1/rolebindings", "/apis/rbac.authorization.k8s.io/v1/clusterroles", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        "/apis/networking.k8s.io/v1/networkpolicies", "/apis/policy/v1/poddisruptionbudgets", "/apis/monitoring.coreos.com/v1/servicemonitors", "/apis/monitoring.coreos.com/v1/prometheusrules"]) {
        const res = await api.raw("GET", `${path}?${selector}`);
        assert.deepEqual(JSON.parse(res.text).items.map((i: Obj) => i.metadata.name), [], path);
      }
      // Helm's release records (Secrets) are gone too; only the Secret the test made stays.
      const secrets = JSON.parse((await api.raw("GET", `/api/v1/namespaces/${NS}/secrets`)).text).items.map((i: Obj) => i.metadata.name);
      assert.deepEqual(secrets, ["infergate-tls"]);
      // CRDs stay, and so do the custom resources in them.
      for (const name of ["inferencepools.inference.networking.x-k8s.io", "inferencepools.inference.networking.k8s.io"]) {
        assert.equal((await api.raw("GET", `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`)).status, 200, name);
      }
      assert.equal((await api.raw("GET", "/apis/inference.networking.x-k8s.io/v1alpha1/namespaces/default/inferencepools/reasoning-pool")).status, 200);
      // A second install finds the CRDs there and leaves them be.
      assert.match(helm("install", "infergate", chart, "-n", NS, "--set", "tls.enabled=false"), /STATUS: deployed/);
      helm("uninstall", "infergate", "-n", NS);
    });
  });
});
