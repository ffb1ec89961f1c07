// The Grafana dashboard only queries metrics that exist: the extension server's registry, the
// filter's counters (read from filter/src/counters.ts) and Envoy's per-endpoint stats.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { ServerMetrics } from "../../extension-server/src/metrics.ts";
import { filterCounterPatterns } from "../support/filter-constants.ts";

/** Envoy's own stats the dashboard uses: requests per endpoint of a pool's picked cluster, and the
 * copies sent to (and failed at) each mirror cluster. */
const ENVOY_STATS = new Set(["envoy_cluster_endpoint_rq_total", "envoy_cluster_upstream_rq_total", "envoy_cluster_upstream_rq_xx"]);

describe("Grafana dashboard", () => {
  it("queries only metrics infergate exposes", async () => {
    const dashboard = JSON.parse(readFileSync(new URL("../../manifests/grafana/infergate-dashboard.json", import.meta.url), "utf8"));
    const server = new Set((await new ServerMetrics().registry.getMetricsAsJSON()).map((m) => m.name));
    const exprs: string[] = dashboard.panels.flatMap((p: any) => p.targets.map((t: any) => t.expr));
    assert.ok(exprs.length >= 8);
    for (const expr of exprs) {
      // Metric names: __name__ regexes, and identifiers outside label matchers and `by (...)`.
      const bare = expr.replace(/\{[^}]*\}/g, "").replace(/\b(by|without)\s*\([^)]*\)/g, "");
      const names = [...[...expr.matchAll(/__name__=~"([^"]+)"/g)].map((m) => m[1]!), ...[...bare.matchAll(/\b((?:infergate|envoy)_[a-z_]+)\b/g)].map((m) => m[1]!)];
      assert.ok(names.length > 0, expr);
      for (const name of names) {
        // A regex name (__name__=~"infergate_rejected_.+") must cover a real counter name.
        const example = name.replace(/\.\+$/, "429");
        const known = server.has(name) || ENVOY_STATS.has(name) || filterCounterPatterns().some((re) => re.test(example));
        assert.ok(known, `${name} in "${expr}" is not a metric infergate exposes`);
      }
    }
  });
});
