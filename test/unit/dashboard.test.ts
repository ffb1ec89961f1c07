// The Grafana dashboard only queries metrics that exist: the extension server's registry and
// the filter's counters in Envoy's Prometheus output.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { ServerMetrics } from "../../extension-server/src/metrics.ts";

/** The filter's counters as Envoy's /stats/prometheus names them (wasmcustom.infergate.x.y -> infergate_x_y). */
const FILTER_COUNTERS = [/^infergate_routed$/, /^infergate_rewritten$/, /^infergate_affinity_routed$/, /^infergate_rejected_\.\+$/, /^infergate_endpoint_\.\+_routed$/];

describe("Grafana dashboard", () => {
  it("queries only metrics infergate exposes", async () => {
    const dashboard = JSON.parse(readFileSync(new URL("../../manifests/grafana/infergate-dashboard.json", import.meta.url), "utf8"));
    const server = new Set((await new ServerMetrics().registry.getMetricsAsJSON()).map((m) => m.name));
    const exprs: string[] = dashboard.panels.flatMap((p: any) => p.targets.map((t: any) => t.expr));
    assert.ok(exprs.length >= 8);
    for (const expr of exprs) {
      const names = [...expr.matchAll(/__name__=~"([^"]+)"|\b(infergate_[a-z_]+)\b/g)].map((m) => m[1] ?? m[2]!);
      assert.ok(names.length > 0, expr);
      for (const name of names) {
        const known = server.has(name) || FILTER_COUNTERS.some((re) => re.test(name));
        assert.ok(known, `${name} in "${expr}" is not a metric infergate exposes`);
      }
    }
  });
});
