// The chart's documentation contract: the README's values table (section "Install with Helm") lists
// every top-level value of charts/infergate/values.yaml and nothing else, every example values file
// is named there, the chart's values.schema.json knows every top-level value (it refuses unknown
// ones), and the chart's copy of the alerting rules is current. The e2e step (test/e2e/helm.test.ts) renders and installs the chart.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { valuesSchema } from "../../scripts/render-manifests.ts";

const repo = new URL("../..", import.meta.url).pathname;
const values = parse(readFileSync(`${repo}charts/infergate/values.yaml`, "utf8")) as Record<string, unknown>;
const readme = readFileSync(`${repo}README.md`, "utf8");
const section = /^## Install with Helm\n([^]*?)^## /m.exec(readme)?.[1] ?? "";

describe("Helm chart values", () => {
  it("the README has an \"Install with Helm\" section with a values table", () => {
    assert.match(section, /^\| Value \| Default \| What it sets \|$/m);
  });

  it("the values table lists every top-level value of values.yaml, and only those", () => {
    const rows = [...section.matchAll(/^\| `([A-Za-z]+)`/gm)].map((m) => m[1]!);
    assert.deepEqual([...rows].sort(), Object.keys(values).sort());
    assert.equal(new Set(rows).size, rows.length, "each value once");
  });

  it("every example values file is named in the section", () => {
    for (const file of readdirSync(`${repo}charts/infergate/examples`)) assert.ok(section.includes(`examples/${file}`), file);
  });

  it("values.schema.json has every top-level value (it refuses unknown ones)", () => {
    const schema = JSON.parse(readFileSync(`${repo}charts/infergate/values.schema.json`, "utf8"));
    assert.equal(schema.additionalProperties, false);
    for (const key of Object.keys(values)) assert.ok(key in schema.properties, key);
  });

  it("values.schema.json is the one scripts/render-manifests.ts derives from the server's schema (a new tuning key needs a re-render)", () => {
    assert.equal(readFileSync(`${repo}charts/infergate/values.schema.json`, "utf8"), valuesSchema());
  });

  it("the chart's copy of the alerting rules is manifests/prometheus/infergate-alerts.yaml (npx tsx scripts/render-manifests.ts copies it)", () => {
    assert.equal(readFileSync(`${repo}charts/infergate/files/infergate-alerts.yaml`, "utf8"), readFileSync(`${repo}manifests/prometheus/infergate-alerts.yaml`, "utf8"));
  });
});
