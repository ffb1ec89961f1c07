// The shipped Grafana dashboard and alerting rules against a real Prometheus (Debian's package,
// scripts/install-prometheus.mjs) scraping a real stack every second: the extension server's
// /metrics and Envoy's admin /stats/prometheus (the filter's counters, Envoy's per-endpoint stats),
// with the scrape jobs of the shipped manifests/prometheus/prometheus.yaml. Traffic covers every
// panel: routed, rewritten and prefix-affine requests, 400, 404, 415, 429 (a saturated pool
// sheds a Sheddable model) and 503 (a model on a pool with no endpoint) answers, a rejected
// configuration, a replica whose scrapes fail, an object left out, queues and KV use,
// RequestMirror copies (to the pool's own replicas, and to the pool with no endpoint, which fail),
// and a v1 pool whose endpoint picker (a fake one) always sends elsewhere than the filter picked.
//
// Every dashboard query (every `targets[].expr`, with its own [1m] and [5m] windows: at a 1 s scrape
// interval a window holds two samples after 2 s, so nothing is shortened) must return data with a
// value above 0, except where 0 is the healthy answer. Every alerting rule must evaluate without
// error, every metric it reads must exist, and the alerts this stack should raise (and only those)
// must be active.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse as parseYaml } from "yaml";
import { installPrometheus } from "../../scripts/install-prometheus.mjs";
import { freePort } from "../support/faults.ts";
import { startPrometheus, type PrometheusProcess, type Sample } from "../support/prometheus.ts";
import { ALERTS_PATH, alertRules, dashboardQueries, metricNames, PROMETHEUS_CONFIG_PATH } from "../support/promql.ts";
import { startFakePicker, type FakePicker } from "../support/fake-picker.ts";
import { podsYaml, postJson, setReplicaLoad, SIM_PORT, startStack, waitFor, type Stack } from "../support/stack.ts";

const REPO = new URL("../..", import.meta.url).pathname;
const IPS = ["127.0.41.11", "127.0.41.12", "127.0.41.13"];
/** A Pod with no replica behind it: every scrape of it fails. */
const DEAD = "127.0.41.19";

const model = (name: string, pool: string, criticality: string): string => `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: ${name}}
spec: {modelName: ${name}, criticality: ${criticality}, poolRef: {name: ${pool}}, targetModels: [{name: llm, weight: 1}]}
`;
/** The pools' inference listener, and a second one serving only the HTTPRoute with the mirrors
 * (a listener with HTTPRoutes serves only their rules; the pools' listener keeps the filter's
 * own routes, which the dashboard's per-endpoint panel reads). */
const [INFERENCE_PORT, MIRROR_PORT, PICKER_PORT] = [await freePort(), await freePort(), await freePort()];
/** The fake endpoint picker's address (its Service's cluster IP). */
const PICKER_IP = "127.0.41.40";
const attachTo = `annotations: {inference.networking.x-k8s.io/attach-to: "name: gateway\\nport: ${INFERENCE_PORT}\\n"}`;
const CONFIG = `apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: pool, ${attachTo}}
spec: {targetPortNumber: ${SIM_PORT}, selector: {app: llm}}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: empty, ${attachTo}}
spec: {targetPortNumber: ${SIM_PORT}, selector: {app: nothing}}
${model("chat", "pool", "Critical")}${model("bulk", "pool", "Sheddable")}${model("orphan", "empty", "Critical")}---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: broken}
spec: {modelName: broken, poolRef: {name: pool}, targetModels: [{name: llm, weight: heavy}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mirrors}
spec:
  parentRefs: [{name: gateway, port: ${MIRROR_PORT}}]
  rules:
${["pool", "empty"].map((to) => `  - matches: [{path: {type: PathPrefix, value: /v1}, headers: [{name: x-mirror, value: ${to}}]}]
    backendRefs: [{group: inference.networking.x-k8s.io, kind: InferencePool, name: pool}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: {group: inference.networking.x-k8s.io, kind: InferencePool, name: ${to}}, percent: 100}}]
`).join("")}${podsYaml("llm", [...IPS, DEAD])}---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: picked, ${attachTo}}
spec:
  selector: {matchLabels: {app: picked}}
  targetPorts: [{number: ${SIM_PORT}}]
  endpointPickerRef: {name: picker, port: {number: ${PICKER_PORT}}, failureMode: FailOpen}
---
apiVersion: v1
kind: Service
metadata: {name: picker}
spec: {clusterIP: ${PICKER_IP}, ports: [{name: grpc, port: ${PICKER_PORT}, appProtocol: kubernetes.io/h2c}]}
${model("picked", "picked", "Critical")}${podsYaml("picked", IPS)}`;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const show = (samples: Sample[]): string => samples.slice(0, 6).map((s) => `${JSON.stringify(s.metric)} ${s.value}`).join("; ") + (samples.length > 6 ? `; … (${samples.length})` : "");

describe("the dashboard and the alerting rules in a real Prometheus", () => {
  let stack: Stack | undefined;
  let prometheus: PrometheusProcess | undefined;
  let picker: FakePicker | undefined;
  const answered = new Map<number, number>();

  before(async () => {
    const bins = installPrometheus(); // scripts/test-e2e.sh installed it before entering the namespace
    // The picker answers a replica other than the filter's own pick (the first it lists).
    picker = await startFakePicker({ host: PICKER_IP, port: PICKER_PORT, pick: (req) => {
      const mine = req.headers["x-gateway-destination-endpoint"]!.split(",")[0];
      return { endpoints: [IPS.map((ip) => `${ip}:${SIM_PORT}`).find((e) => e !== mine)!] };
    } });
    stack = await startStack(CONFIG, IPS.map((ip) => ({ ip, models: ["llm"] })), { metricsPort: 0, inferencePorts: "config" });
    assert.deepEqual(stack.server.problems.length, 1, `the broken InferenceModel is left out: ${stack.server.problems.join("; ")}`);

    // The shipped configuration, with this stack's targets, a 1 s interval and the rules' full path.
    const shipped = parseYaml(readFileSync(join(REPO, PROMETHEUS_CONFIG_PATH), "utf8")) as { global: Record<string, string>; rule_files: string[]; scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }> };
    const targets: Record<string, string> = { "infergate": `127.0.0.1:${stack.server.metricsPort}`, "infergate-envoy": stack.server.envoy!.adminAddress };
    assert.deepEqual(shipped.scrape_configs.map((j) => j.job_name).sort(), Object.keys(targets).sort(), "the shipped scrape jobs");
    for (const job of shipped.scrape_configs) job.static_configs = [{ targets: [targets[job.job_name]!] }];
    shipped.global = { ...shipped.global, scrape_interval: "1s", evaluation_interval: "1s" };
    assert.deepEqual(shipped.rule_files, ["infergate-alerts.yaml"]);
    shipped.rule_files = [join(REPO, ALERTS_PATH)];
    prometheus = await startPrometheus({ bin: bins.prometheus, port: await freePort(), config: shipped });
    await waitFor(async () => {
      const { activeTargets } = await prometheus!.api<{ activeTargets: Array<{ health: string }> }>("targets");
      return activeTargets.length === 2 && activeTargets.every((t) => t.health === "up");
    }, 20_000, 200);
    await sleep(1500); // a first scrape with every counter at 0

    const url = `http://127.0.0.1:${INFERENCE_PORT}`;
    const send = async (body: unknown, headers: Record<string, string> = {}, base = url): Promise<number> => {
      const status = (await postJson(`${base}/v1/completions`, body, headers)).status;
      answered.set(status, (answered.get(status) ?? 0) + 1);
      return status;
    };
    const prefix = "You are a helpful assistant. Answer briefly and cite nothing. ".repeat(8);
    const chat = (i: number): Promise<number> => send({ model: "chat", prompt: `${prefix} question ${i % 5}`, max_tokens: 1 });
    for (let i = 0; i < 30; i++) assert.equal(await chat(i), 200);
    // Requests the picker sends elsewhere (served_elsewhere_total), once its cluster is healthy
    // (FailOpen routes by the filter's own pick until then).
    const picked = (i: number): Promise<number> => send({ model: "picked", prompt: `p${i}`, max_tokens: 1 });
    await waitFor(async () => (await picked(0)) === 200 && picker!.requests.length > 0, 10_000, 200);
    for (let i = 1; i < 6; i++) assert.equal(await picked(i), 200);
    // Mirrored copies: to replicas of the pool (sent), and to the pool with no endpoint (failed).
    // Envoy creates a cluster's 5xx counter at the first 5xx: one copy fails, Prometheus scrapes
    // the new counter, then more fail, so its rate is above 0.
    const mirrored = (to: string, i: number) => send({ model: "chat", prompt: `m${i}`, max_tokens: 1 }, { "x-mirror": to }, `http://127.0.0.1:${MIRROR_PORT}`);
    for (let i = 0; i < 5; i++) assert.equal(await mirrored("pool", i), 200);
    assert.equal(await mirrored("empty", 0), 200);
    await sleep(1500);
    for (let i = 1; i < 5; i++) assert.equal(await mirrored("empty", i), 200);
    for (let i = 0; i < 3; i++) {
      assert.equal(await send({ model: "nope", prompt: "x" }), 404);
      assert.equal(await send("{bad"), 400);
      assert.equal(await send({ model: "chat", prompt: "x" }, { "content-encoding": "gzip" }), 415);
      assert.equal(await send({ model: "orphan", prompt: "x" }), 503);
    }

    // A configuration with no valid pool is rejected as a whole; the previous one keeps serving.
    // Then a good one with one more model: a new routing snapshot, pushed over ECDS and ACKed (the
    // loads go out on the load channel, so only a configuration change moves the xDS panels).
    stack.writeConfig("apiVersion: v1\nkind: Pod\nmetadata: {name: lonely}\n");
    await waitFor(async () => stack!.server.lastRejection.length > 0, 5000);
    stack.writeConfig(CONFIG + model("extra", "pool", "Standard"));
    await waitFor(async () => stack!.server.lastRejection.length === 0, 5000);

    // Saturate the pool: Sheddable requests are shed (429), Critical ones still routed.
    for (const ip of IPS) await setReplicaLoad(`${ip}:${SIM_PORT}`, { waiting: 40, kvUsage: 0.9 });
    await waitFor(async () => (await postJson(`${url}/v1/completions`, { model: "bulk", prompt: "x", max_tokens: 1 })).status === 429, 5000);
    for (let i = 0; i < 5; i++) assert.equal(await send({ model: "bulk", prompt: `b${i}`, max_tokens: 1 }), 429);
    // Then some load that leaves the pool unsaturated, so queues and KV use are not zero.
    await setReplicaLoad(`${IPS[0]}:${SIM_PORT}`, { waiting: 3, kvUsage: 0.5 });
    await setReplicaLoad(`${IPS[1]}:${SIM_PORT}`, { waiting: 1, kvUsage: 0.2 });
    await setReplicaLoad(`${IPS[2]}:${SIM_PORT}`, {});
    for (let i = 30; i < 40; i++) assert.equal(await chat(i), 200);

    // Prometheus has scraped the last answers (Envoy's counters are exact), and evaluated the rules since.
    const shed = answered.get(429)!;
    await waitFor(async () => (await prometheus!.query("sum(infergate_rejected_429_total)"))[0]?.value! >= shed, 10_000, 200);
    await waitFor(async () => (await prometheus!.query('sum(infergate_config_reloads_total{result="rejected"})'))[0]?.value === 1, 10_000, 200);
    await sleep(2500);
  });

  after(async () => {
    await prometheus?.stop();
    await stack?.stop();
    await picker?.stop();
  });

  it("answers every dashboard query with data", async (t) => {
    const failures: string[] = [];
    for (const q of dashboardQueries()) {
      const samples = await prometheus!.query(q.expr);
      t.diagnostic(`${q.panel} [${q.refId}] ${q.expr} → ${show(samples)}`);
      const values = samples.map((s) => s.value);
      // 0 is the healthy answer for Envoys NACKing a push and for loads the filters rejected;
      // every other query shows something.
      const healthyZero = /nacking|load_rejected/.test(q.expr);
      if (samples.length === 0) failures.push(`${q.panel} [${q.refId}]: no data for ${q.expr}`);
      else if (!values.every(Number.isFinite)) failures.push(`${q.panel} [${q.refId}]: ${show(samples)}`);
      else if (healthyZero ? values.some((v) => v !== 0) : Math.max(...values) <= 0) failures.push(`${q.panel} [${q.refId}]: ${show(samples)} for ${q.expr}`);
    }
    assert.deepEqual(failures, [], `answered ${JSON.stringify(Object.fromEntries(answered))}\n${prometheus!.log()}`);
  });

  it("shows each status the filter answered, by status", async () => {
    const rejected = dashboardQueries().find((q) => q.expr.includes("infergate_rejected_429_total"))!;
    const byStatus = new Map((await prometheus!.query(rejected.expr)).map((s) => [s.metric.status, s.value]));
    for (const status of ["400", "404", "415", "429", "503"]) assert.ok(byStatus.get(status)! > 0, `${status}: ${JSON.stringify([...byStatus])}`);
    assert.equal(byStatus.get("500"), 0, "no request answered 500");
  });

  it("evaluates every alerting rule without error, over metrics that exist", async () => {
    const { groups } = await prometheus!.api<{ groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string; lastEvaluation: string }> }> }>("rules");
    const evaluated = groups.flatMap((g) => g.rules);
    assert.deepEqual(evaluated.map((r) => r.name).sort(), alertRules().map((r) => r.alert).sort());
    for (const r of evaluated) {
      assert.equal(r.health, "ok", `${r.name}: ${r.lastError}`);
      assert.ok(!r.lastEvaluation.startsWith("0001"), `${r.name} was evaluated`);
    }
    for (const rule of alertRules()) {
      for (const { name } of metricNames(rule.expr)) {
        const series = await prometheus!.query(`count({__name__="${name}"})`);
        assert.ok(series.length > 0, `${rule.alert} reads ${name}, which this stack does not export`);
      }
    }
  });

  it("raises the alerts this stack deserves, and no other", async () => {
    const { alerts } = await prometheus!.api<{ alerts: Array<{ labels: Record<string, string>; state: string }> }>("alerts");
    const active = (name: string): Array<Record<string, string>> => alerts.filter((a) => a.labels.alertname === name).map((a) => a.labels);
    // The dead replica and the empty pool (pending: the test is shorter than their `for`).
    assert.deepEqual(active("InfergateEndpointScrapeFailing").map((l) => l.endpoint), [`${DEAD}:${SIM_PORT}`]);
    assert.deepEqual(active("InfergateEndpointScrapeErrors").map((l) => l.endpoint), [`${DEAD}:${SIM_PORT}`]);
    assert.deepEqual(active("InfergatePoolNoReadyEndpoint").map((l) => l.pool), ["default/empty"]);
    assert.equal(active("InfergateConfigProblems").length, 1, "the broken InferenceModel");
    // A healthy control plane and data plane otherwise.
    for (const name of ["InfergateExtensionServerDown", "InfergateFilterCountersAbsent", "InfergateSnapshotRejected", "InfergateSnapshotNacks",
      "InfergateSnapshotPushStalled", "InfergateNoEnvoyConnected", "InfergateEnvoyXdsDisconnected", "InfergateXdsAckSlow", "InfergateConfigRejected",
      "InfergateFilterInternalErrors", "InfergateSnapshotRecordsDropped"]) {
      assert.deepEqual(active(name), [], name);
    }
  });
});
