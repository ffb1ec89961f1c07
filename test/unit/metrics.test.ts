// The extension server's Prometheus metrics: named by Prometheus conventions, each documented in
// the README's table with its type and labels, and each computed from what the server knows (the
// configuration, the scraper's readings, the schedule, the open xDS streams).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parseRoutingConfig } from "../../extension-server/src/config/routing-config.ts";
import type { EndpointReading } from "../../extension-server/src/load/scraper.ts";
import { ServerMetrics } from "../../extension-server/src/metrics.ts";
import type { Schedule } from "../../extension-server/src/scheduling/scheduler.ts";
import { metricSamples } from "../support/stack.ts";

const config = (ips: string[]) => parseRoutingConfig(`apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: p, namespace: team}
spec: {selector: {app: a}, targetPortNumber: 80}
${ips.map((ip, i) => `---
apiVersion: v1
kind: Pod
metadata: {name: a-${i}, namespace: team, labels: {app: a}}
status: {podIP: ${ip}}
`).join("")}`, "test.yaml");

const reading = (address: string, r: Partial<EndpointReading>): EndpointReading =>
  ({ address, lastSuccess: -Infinity, consecutiveFailures: 0, scrapes: 0, failures: 0, ...r });

/** `name{labels} value` of one sample, by a label matcher like `endpoint="10.0.0.1:80"`. */
async function sample(m: ServerMetrics, name: string, ...matchers: string[]): Promise<number | undefined> {
  const found = metricSamples(await m.registry.metrics(), name).filter((s) => matchers.every((x) => s.labels.includes(x)));
  assert.ok(found.length <= 1, `one ${name} sample for ${matchers.join(",")}: ${JSON.stringify(found)}`);
  return found[0]?.value;
}

describe("extension server metrics", () => {
  it("follow Prometheus naming conventions", async () => {
    for (const m of await new ServerMetrics().registry.getMetricsAsJSON()) {
      if (!m.name.startsWith("infergate_")) continue;
      const type = String(m.type as unknown); // a string at run time ("counter"), whatever the typings say
      if (type === "counter") assert.match(m.name, /_total$/, `counter ${m.name} ends in _total`);
      else assert.doesNotMatch(m.name, /_total$/, `${type} ${m.name} does not end in _total`);
      assert.doesNotMatch(m.name, /_(ms|milliseconds|millis|percent|perc)(_|$)/, `${m.name} is in base units`);
      if (/\(0-1\)/.test(m.help)) assert.match(m.name, /_ratio$/, `${m.name} is a 0-1 ratio`);
      if (type === "histogram" || /_timestamp/.test(m.name)) assert.match(m.name, /_seconds$/, `${m.name} is in seconds`);
    }
  });

  it("are each documented in the README's table with their type and labels", async () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    const rows = new Map([...readme.matchAll(/^\| `(infergate_[a-z_]+)` \| (\w+) \|\s*([a-z, ]*?)\s*\| (.+) \|$/gm)]
      .map((r) => [r[1]!, { type: r[2]!, labels: r[3]!.split(",").map((l) => l.trim()).filter(Boolean) }]));
    const registry = new ServerMetrics().registry;
    const types = new Map((await registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type as unknown)]));
    const ours = registry.getMetricsAsArray().filter((m) => m.name.startsWith("infergate_"));
    assert.deepEqual([...rows.keys()].sort(), ours.map((m) => m.name).sort(), "the README's table lists exactly the server's metrics");
    for (const m of ours) {
      const row = rows.get(m.name)!;
      assert.equal(row.type, types.get(m.name), `${m.name}: type`);
      assert.deepEqual(row.labels, [...((m as unknown as { labelNames: string[] }).labelNames ?? [])], `${m.name}: labels`);
    }
  });

  it("start counters with known label values at 0, and export the process's metrics", async () => {
    const m = new ServerMetrics();
    assert.equal(await sample(m, "infergate_config_reloads_total", 'result="rejected"'), 0);
    assert.equal(await sample(m, "infergate_xds_responses_total", 'type="ecds"', 'result="nack"'), 0);
    assert.equal(await sample(m, "infergate_xds_ack_duration_seconds_count", 'type="ecds"'), 0);
    assert.equal(await sample(m, "infergate_xds_connected_envoys", 'type="ecds"'), 0);
    assert.ok((await sample(m, "process_resident_memory_bytes"))! > 0);
    assert.ok(metricSamples(await m.registry.metrics(), "nodejs_eventloop_lag_seconds").length === 1);
  });

  it("count ready endpoints per pool, scrapes per endpoint by result, and the last successful scrape's time", async () => {
    const m = new ServerMetrics();
    const c = config(["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    m.recordConfig(c);
    const now = performance.now();
    const readings = new Map([
      ["10.0.0.1:80", reading("10.0.0.1:80", { lastSuccess: now - 2000, scrapes: 10, failures: 3, load: { waiting: 4, running: 1, kvUsage: 0.25, runningLoras: [], waitingLoras: [], maxLoras: 0, engine: "vllm" } })],
      ["10.0.0.2:80", reading("10.0.0.2:80", { lastSuccess: now, scrapes: 7 })],
      ["10.0.0.3:80", reading("10.0.0.3:80", { scrapes: 5, failures: 5, consecutiveFailures: 5 })],
    ]);
    const schedule: Schedule = new Map([["team/p", { saturation: 1.5, endpoints: new Map([
      ["10.0.0.1:80", { ready: true, score: 700 }], ["10.0.0.2:80", { ready: true, score: 900 }], ["10.0.0.3:80", { ready: false }],
    ]) }]]);
    m.recordSchedule(c, schedule, readings);
    const e1 = 'endpoint="10.0.0.1:80"';
    assert.equal(await sample(m, "infergate_pool_endpoints", 'pool="team/p"'), 3);
    assert.equal(await sample(m, "infergate_pool_ready_endpoints", 'pool="team/p"'), 2);
    assert.equal(await sample(m, "infergate_pool_saturation", 'pool="team/p"'), 1.5);
    assert.equal(await sample(m, "infergate_endpoint_kv_cache_usage_ratio", e1), 0.25);
    assert.equal(await sample(m, "infergate_endpoint_waiting_requests", e1), 4);
    assert.equal(await sample(m, "infergate_endpoint_score", 'endpoint="10.0.0.3:80"'), undefined, "not routable: no score");
    assert.equal(await sample(m, "infergate_endpoint_scrapes_total", e1, 'result="ok"', 'pool="team/p"'), 7);
    assert.equal(await sample(m, "infergate_endpoint_scrapes_total", e1, 'result="error"'), 3);
    assert.equal(await sample(m, "infergate_endpoint_scrapes_total", 'endpoint="10.0.0.3:80"', 'result="ok"'), 0);
    assert.equal(await sample(m, "infergate_endpoint_scrapes_total", 'endpoint="10.0.0.3:80"', 'result="error"'), 5);
    const t1 = (await sample(m, "infergate_endpoint_last_scrape_success_timestamp_seconds", e1))!;
    assert.ok(Math.abs(t1 - (Date.now() - 2000) / 1000) < 1, `2 s ago as Unix time: ${t1}`);
    assert.equal(await sample(m, "infergate_endpoint_last_scrape_success_timestamp_seconds", 'endpoint="10.0.0.3:80"'), 0, "never succeeded");

    // Readings are live: a later scrape shows at the next collection, without a new schedule.
    readings.get("10.0.0.1:80")!.scrapes++;
    assert.equal(await sample(m, "infergate_endpoint_scrapes_total", e1, 'result="ok"'), 8);

    // An endpoint that leaves the pool takes its series with it.
    const smaller = config(["10.0.0.1"]);
    m.recordConfig(smaller);
    m.recordSchedule(smaller, new Map([["team/p", { saturation: 0, endpoints: new Map([["10.0.0.1:80", { ready: false }]]) }]]), readings);
    assert.equal(await sample(m, "infergate_pool_ready_endpoints", 'pool="team/p"'), 0);
    assert.equal(await sample(m, "infergate_endpoint_scrapes_total", 'endpoint="10.0.0.2:80"', 'result="ok"'), undefined);
    assert.equal(await sample(m, "infergate_endpoint_last_scrape_success_timestamp_seconds", 'endpoint="10.0.0.3:80"'), undefined);
  });

  it("count connected and NACKing Envoys by node, and whether the last configuration load succeeded", async () => {
    const m = new ServerMetrics();
    const streams = [
      { type: "ecds" as const, node: "envoy-a", rejected: false },
      { type: "ecds" as const, node: "envoy-a", rejected: true }, // a second filter name, same Envoy
      { type: "ecds" as const, node: "envoy-b", rejected: false },
      { type: "eds" as const, node: "envoy-a", rejected: false },
    ];
    m.watchXds(() => streams);
    assert.equal(await sample(m, "infergate_xds_connected_envoys", 'type="ecds"'), 2);
    assert.equal(await sample(m, "infergate_xds_connected_envoys", 'type="eds"'), 1);
    assert.equal(await sample(m, "infergate_xds_nacking_envoys", 'type="ecds"'), 1);
    assert.equal(await sample(m, "infergate_xds_nacking_envoys", 'type="eds"'), 0);
    streams.length = 0;
    assert.equal(await sample(m, "infergate_xds_connected_envoys", 'type="ecds"'), 0, "read when scraped");

    m.recordReload(true);
    assert.equal(await sample(m, "infergate_config_last_reload_successful"), 1);
    m.recordReload(false);
    assert.equal(await sample(m, "infergate_config_last_reload_successful"), 0);
    assert.equal(await sample(m, "infergate_config_reloads_total", 'result="rejected"'), 1);
    assert.equal(await sample(m, "infergate_config_reloads_total", 'result="ok"'), 1);
  });
});
