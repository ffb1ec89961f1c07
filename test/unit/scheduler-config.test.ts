// Scheduler settings in kubernetes mode: --scheduler-config names a file with one InfergateConfig
// document (the Helm chart mounts it from a ConfigMap). It is validated like the standalone file's
// InfergateConfig, an invalid one is fatal at start-up with the field named, and its values reach
// the snapshot the server pushes (the picker's tuning records) and the scrape loop.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { ConfigError, parseSchedulerConfig } from "../../extension-server/src/config/routing-config.ts";
import { DEFAULT_SCHEDULER_CONFIG } from "../../extension-server/src/scheduling/config.ts";
import { InfergateServer } from "../../extension-server/src/server.ts";
import { FakeKubeApi } from "../support/fake-kube-api.ts";
import { freePort } from "../support/kube-apiserver.ts";
import { waitFor } from "../support/stack.ts";

const repo = new URL("../..", import.meta.url).pathname;
const doc = (spec: string) => `apiVersion: infergate.io/v1alpha1\nkind: InfergateConfig\nmetadata: {name: infergate}\nspec:\n${spec}`;
const problemsOf = (text: string): string[] => {
  try {
    parseSchedulerConfig(text, "tuning.yaml");
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
  assert.fail("accepted");
};

describe("parseSchedulerConfig", () => {
  it("reads an InfergateConfig document, with the defaults for what it leaves out", () => {
    const c = parseSchedulerConfig(doc("  scrape: {intervalMs: 100}\n  picker: {scoreWeight: 77}\n"), "tuning.yaml");
    assert.equal(c.scrape.intervalMs, 100);
    assert.equal(c.picker.scoreWeight, 77);
    assert.deepEqual(c.scorers, DEFAULT_SCHEDULER_CONFIG.scorers);
    assert.equal(c.picker.inflightWeight, DEFAULT_SCHEDULER_CONFIG.picker.inflightWeight);
  });

  it("names an invalid field, another kind, a second document and an empty file", () => {
    assert.deepEqual(problemsOf(doc("  picker: {scoreWeight: -1}\n")),
      ["tuning.yaml: document 1 (InfergateConfig infergate): spec.picker.scoreWeight: Too small: expected number to be >=0"]);
    assert.match(problemsOf(`${doc("  {}\n")}---\napiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferencePool\nmetadata: {name: p}\nspec: {targetPortNumber: 8000, selector: {app: x}}\n`).join("\n"),
      /document 2 \(InferencePool p\): only an InfergateConfig document belongs in this file/);
    assert.match(problemsOf(`${doc("  {}\n")}---\n${doc("  {}\n")}`).join("\n"), /only one InfergateConfig document is allowed/);
    assert.deepEqual(problemsOf(""), ["tuning.yaml: no InfergateConfig document"]);
  });
});

describe("--scheduler-config", () => {
  const api = new FakeKubeApi();
  let dir: string;
  let kubeconfig: string;
  let kc: KubeConfig;

  before(async () => {
    api.serve("/apis/inference.networking.x-k8s.io/v1alpha2/inferencepools", [{
      apiVersion: "inference.networking.x-k8s.io/v1alpha2", kind: "InferencePool",
      metadata: { name: "pool", namespace: "default" }, spec: { targetPortNumber: 8000, selector: { app: "m" } },
    }]);
    api.serve("/api/v1/pods", []);
    const url = await api.start();
    kc = new KubeConfig();
    kc.loadFromOptions({ clusters: [{ name: "t", server: url }], users: [{ name: "t", token: "t" }], contexts: [{ name: "t", cluster: "t", user: "t" }], currentContext: "t" });
    dir = mkdtempSync(join(tmpdir(), "infergate-scheduler-"));
    kubeconfig = join(dir, "kubeconfig");
    writeFileSync(kubeconfig, kc.exportConfig());
  });

  after(async () => {
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("gives the Kubernetes source's configuration its settings, pushed as the snapshot's tuning", async () => {
    const scheduler = parseSchedulerConfig(doc("  picker: {scoreWeight: 77, nearBestPercent: 9}\n"), "tuning.yaml");
    for (const [settings, expected] of [[scheduler, /tuning score-weight 77\n[^]*tuning near-best-percent 9\n/], [undefined, /tuning score-weight 40\n/]] as const) {
      const server = new InfergateServer({ source: { kubernetes: kc, scheduler: settings }, xdsPort: 0, log: () => undefined });
      try {
        await server.start();
        assert.match(server.snapshot, expected);
      } finally {
        await server.stop();
      }
    }
  });

  /** Runs the CLI until `done` is true of its stderr (or it exits), then stops it. */
  const run = async (args: string[], done: (stderr: string) => boolean): Promise<{ code: number | null; stderr: string }> => {
    const child = spawn(process.execPath, ["--import", "tsx", join(repo, "extension-server/src/main.ts"), ...args],
      { cwd: repo, env: { ...process.env, KUBECONFIG: kubeconfig }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (c) => (stderr += c));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    await waitFor(async () => child.exitCode !== null || done(stderr), 30_000).catch(() => undefined);
    child.kill("SIGTERM");
    return { code: await exited, stderr };
  };

  it("is read by the command line: its tuning is served, and an invalid file stops the server before it starts", async () => {
    const good = join(dir, "good.yaml");
    writeFileSync(good, doc("  picker: {scoreWeight: 55}\n"));
    const debugPort = await freePort();
    let snapshot = "";
    const ok = await run(["kubernetes", "--insecure", "--xds-port=0", "--metrics-port=0", "--module-port=0", `--debug-port=${debugPort}`, `--scheduler-config=${good}`], (stderr) => {
      if (!/infergate: xDS on/.test(stderr)) return false;
      void fetch(`http://127.0.0.1:${debugPort}/snapshot`).then((r) => r.text()).then((t) => (snapshot = t), () => undefined);
      return /tuning score-weight/.test(snapshot);
    });
    assert.match(snapshot, /tuning score-weight 55\n/, ok.stderr);

    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, doc("  scrape: {intervalMs: 1}\n"));
    const refused = await run(["kubernetes", "--insecure", `--scheduler-config=${bad}`], () => false);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /invalid configuration:\n {2}.*bad\.yaml: document 1 \(InfergateConfig infergate\): spec\.scrape\.intervalMs: Too small/);
    assert.doesNotMatch(refused.stderr, /xDS on/);

    const missing = await run(["kubernetes", "--insecure", `--scheduler-config=${join(dir, "absent.yaml")}`], () => false);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /absent\.yaml: cannot read/);

    const standalone = await run(["standalone", "--config", join(repo, "manifests/standalone/seed.yaml"), "--no-envoy", `--scheduler-config=${good}`], () => false);
    assert.equal(standalone.code, 2);
    assert.match(standalone.stderr, /--scheduler-config is for kubernetes mode/);
  });
});
