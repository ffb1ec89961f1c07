// The shipped Prometheus alerting rules (manifests/prometheus/infergate-alerts.yaml): valid for
// Prometheus (`promtool check rules`), firing and staying quiet as their unit tests say
// (`promtool test rules infergate-alerts.test.yaml`), each tested both ways, each reading only
// metrics infergate exposes, and each documented in the README. promtool comes from
// scripts/install-prometheus.mjs (the Debian package, unpacked into .cache/ when missing).
// test/e2e/prometheus.test.ts evaluates the same rules in a real Prometheus against a real stack.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
import { installPrometheus } from "../../scripts/install-prometheus.mjs";
import { ALERT_TESTS_PATH, ALERTS_PATH, alertRules, exposedName, metricNames, PROMETHEUS_CONFIG_PATH } from "../support/promql.ts";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** promtool's exit status and output. */
function promtool(...args: string[]): { ok: boolean; output: string } {
  const { promtool: bin } = installPrometheus();
  try {
    return { ok: true, output: execFileSync(bin, args, { cwd: REPO, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }) };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, output: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

describe("alerting rules", () => {
  it("pass promtool check rules, and the example Prometheus configuration that loads them passes check config", () => {
    const rules = promtool("check", "rules", ALERTS_PATH);
    assert.ok(rules.ok, rules.output);
    assert.match(rules.output, new RegExp(`SUCCESS: ${alertRules().length} rules found`));
    const config = promtool("check", "config", PROMETHEUS_CONFIG_PATH);
    assert.ok(config.ok, config.output);
  });

  it("pass their unit tests (promtool test rules)", () => {
    const result = promtool("test", "rules", ALERT_TESTS_PATH);
    assert.ok(result.ok, result.output);
    assert.match(result.output, /SUCCESS/);
  });

  it("promtool test rules fails when a rule no longer does what its test says", () => {
    // The tests are not vacuous: the same tests against a rule with a changed threshold fail.
    const dir = mkdtempSync(join(tmpdir(), "infergate-alerts-"));
    try {
      copyFileSync(join(REPO, ALERT_TESTS_PATH), join(dir, "infergate-alerts.test.yaml"));
      const rules = readFileSync(join(REPO, ALERTS_PATH), "utf8");
      assert.ok(rules.includes("infergate_pool_saturation >= 1"));
      writeFileSync(join(dir, "infergate-alerts.yaml"), rules.replace("infergate_pool_saturation >= 1", "infergate_pool_saturation >= 2"));
      const result = promtool("test", "rules", join(dir, "infergate-alerts.test.yaml"));
      assert.equal(result.ok, false);
      assert.match(result.output, /InfergatePoolSaturated/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("each alert is tested firing (with its labels and annotations) and quiet", () => {
    const tests = (parseYaml(readFileSync(join(REPO, ALERT_TESTS_PATH), "utf8")) as { tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }> }> }).tests
      .flatMap((t) => t.alert_rule_test ?? []);
    for (const { alert } of alertRules()) {
      const cases = tests.filter((c) => c.alertname === alert);
      assert.ok(cases.some((c) => (c.exp_alerts ?? []).length > 0), `${alert} is tested firing`);
      assert.ok(cases.some((c) => (c.exp_alerts ?? []).length === 0), `${alert} is tested quiet`);
    }
  });

  it("each alert has a severity, a summary and a description, and reads only metrics infergate exposes", async () => {
    const known = await exposedName();
    const rules = alertRules();
    assert.equal(new Set(rules.map((r) => r.alert)).size, rules.length, "alert names are unique");
    for (const rule of rules) {
      assert.match(rule.labels?.severity ?? "", /^(critical|warning)$/, `${rule.alert}: severity`);
      assert.ok(rule.annotations?.summary && rule.annotations.description, `${rule.alert}: summary and description`);
      const names = metricNames(rule.expr);
      assert.ok(names.length > 0, rule.expr);
      for (const { name, regex } of names) assert.ok(known(name, regex), `${rule.alert}: ${name} is not a metric infergate exposes`);
    }
  });

  it("each alert is documented in the README", () => {
    const readme = readFileSync(join(REPO, "README.md"), "utf8");
    for (const { alert } of alertRules()) assert.ok(readme.includes(`| \`${alert}\` |`), `README documents ${alert}`);
  });
});
