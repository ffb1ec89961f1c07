// The Grafana dashboard only queries metrics that exist: the extension server's registry, the
// filter's counters (read from filter/src/counters.ts) and Envoy's per-endpoint stats. This is the
// fast check; test/e2e/prometheus.test.ts runs every query through a real Prometheus scraping a
// real stack and requires data from each.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { dashboardQueries, exposedName, metricNames } from "../support/promql.ts";

describe("Grafana dashboard", () => {
  it("queries only metrics infergate exposes", async () => {
    const known = await exposedName();
    const queries = dashboardQueries();
    assert.ok(queries.length >= 8);
    assert.equal(new Set(queries.map((q) => `${q.panel} ${q.refId}`)).size, queries.length, "refIds are unique per panel");
    for (const { expr } of queries) {
      const names = metricNames(expr);
      assert.ok(names.length > 0, expr);
      for (const { name, regex } of names) assert.ok(known(name, regex), `${name} in "${expr}" is not a metric infergate exposes`);
    }
  });

  it("reads metric names the way PromQL does", () => {
    assert.deepEqual(metricNames('sum by (pool, endpoint) (rate(a_total{result="error"}[1m])) / on (pool) b'), [{ name: "a_total", regex: false }, { name: "b", regex: false }]);
    assert.deepEqual(metricNames('histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m]))) > 1e3 and time() - c offset 5m'), [{ name: "h_bucket", regex: false }, { name: "c", regex: false }]);
    assert.deepEqual(metricNames('sum by (__name__) (rate({__name__=~"x_[0-9]+_total"}[1m]))'), [{ name: "x_[0-9]+_total", regex: true }]);
  });
});
