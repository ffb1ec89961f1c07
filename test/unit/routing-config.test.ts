import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { ConfigError, parseRoutingConfig } from "../../extension-server/src/config/routing-config.ts";
import { renderSnapshot } from "../../extension-server/src/snapshot.ts";

const seedPath = new URL("../../manifests/standalone/seed.yaml", import.meta.url);
const seed = readFileSync(seedPath, "utf8");

function problemsOf(text: string): string[] {
  try {
    parseRoutingConfig(text, "test.yaml");
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail("expected the configuration to be rejected");
}

describe("standalone YAML", () => {
  it("reads the seed's v1alpha1 InferencePool and InferenceModel as written", () => {
    const config = parseRoutingConfig(seed, "seed.yaml");
    assert.equal(config.pools.length, 1);
    const pool = config.pools[0]!;
    assert.equal(pool.name, "reasoning-pool");
    assert.deepEqual(pool.selector, { app: "qwq-32b" });
    assert.deepEqual(pool.targetPorts, [8000]);
    assert.deepEqual(pool.attachTo, { name: "inference-gateway", port: 8081 });
    assert.deepEqual(pool.endpoints.map((e) => `${e.ip}:${e.port}`), ["127.0.0.11:8000", "127.0.0.12:8000", "127.0.0.13:8000"]);
    assert.deepEqual(config.models, [{
      resourceName: "inferencemodel-sample", namespace: "default", modelName: "qwq", pool: "reasoning-pool",
      criticality: "critical", targets: [{ name: "qwq-32b", weight: 100 }],
    }]);
  });

  it("renders the snapshot the filter reads, with target names accepted as-is", () => {
    const text = renderSnapshot(parseRoutingConfig(seed, "seed.yaml"), 7);
    assert.equal(text, [
      "infergate-snapshot 1", "version 7", "pool reasoning-pool",
      "endpoint 127.0.0.11:8000 1000", "endpoint 127.0.0.12:8000 1000", "endpoint 127.0.0.13:8000 1000",
      "model qwq reasoning-pool critical", "target qwq-32b 100",
      "model qwq-32b reasoning-pool standard", "target qwq-32b 1", "",
    ].join("\n"));
  });

  it("accepts the v1 InferencePool (matchLabels, several targetPorts)", () => {
    const config = parseRoutingConfig(`
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: p, namespace: ml}
spec:
  selector: {matchLabels: {app: x}}
  targetPorts: [{number: 8000}, {number: 8001}]
  endpointPickerRef: {name: epp, port: {number: 9002}}
---
apiVersion: v1
kind: Pod
metadata: {name: x-0, namespace: ml, labels: {app: x}}
status: {podIP: 10.1.2.3}
---
apiVersion: v1
kind: Pod
metadata: {name: other-ns, namespace: default, labels: {app: x}}
status: {podIP: 10.9.9.9}
---
apiVersion: v1
kind: Pod
metadata: {name: not-ready, namespace: ml, labels: {app: x}}
status: {podIP: 10.1.2.4, conditions: [{type: Ready, status: "False"}]}
`, "v1.yaml");
    assert.deepEqual(config.pools[0]!.endpoints.map((e) => `${e.ip}:${e.port}`), ["10.1.2.3:8000", "10.1.2.3:8001"]);
  });

  it("names the document and the field of every problem", () => {
    const problems = problemsOf(seed.replace("targetPortNumber: 8000", "targetPortNumber: eight-thousand").replace("weight: 100", "weight: -1"));
    assert.ok(problems.some((p) => /document 1 \(InferencePool reasoning-pool\): spec\.targetPortNumber/.test(p)), problems.join("\n"));
    assert.ok(problems.some((p) => /document 2 \(InferenceModel inferencemodel-sample\): spec\.targetModels\[0\]\.weight/.test(p)), problems.join("\n"));
  });

  it("rejects broken YAML, unknown kinds, dangling pool references and clashing model names", () => {
    assert.match(problemsOf("kind: [unclosed").join("\n"), /YAML error/);
    assert.match(problemsOf(seed + "---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n").join("\n"), /unsupported kind "Service"/);
    assert.match(problemsOf(seed.replace("    name: reasoning-pool\n  targetModels", "    name: nowhere\n  targetModels")).join("\n"), /poolRef\.name: no InferencePool named nowhere/);
    const twice = seed + "---\n" + seed.split("---")[1]!.replace("inferencemodel-sample", "second");
    assert.match(problemsOf(twice).join("\n"), /modelName: qwq is already served by InferenceModel inferencemodel-sample/);
    assert.match(problemsOf(seed.replace("weight: 100", "weight: 0")).join("\n"), /at least one weight must be positive/);
    assert.match(problemsOf(seed.replace("modelName: qwq", "modelName: q w q")).join("\n"), /modelName: must not contain whitespace/);
    assert.match(problemsOf(seed.replace("port: 8081", "port: huge")).join("\n"), /attach-to"\]: port/);
  });

  it("shares traffic equally when no target has a weight, and refuses a mix", () => {
    const base = (targets: string) => `apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: p}
spec: {selector: {app: a}, targetPortNumber: 80}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: m}
spec: {modelName: m, poolRef: {name: p}, targetModels: ${targets}}
`;
    const config = parseRoutingConfig(base("[{name: a}, {name: b}]"), "t");
    assert.deepEqual(config.models[0]!.targets, [{ name: "a", weight: 1 }, { name: "b", weight: 1 }]);
    assert.equal(config.models[0]!.criticality, "standard", "unset criticality is Standard");
    assert.match(problemsOf(base("[{name: a, weight: 3}, {name: b}]")).join("\n"), /weights must be set on every target or on none/);
  });
});
