// What the shipped dashboard and alerting rules query, and which metric names infergate exposes,
// for the tests that hold the two together (test/unit/dashboard.test.ts, test/unit/alerts.test.ts,
// test/e2e/prometheus.test.ts).
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { ServerMetrics } from "../../extension-server/src/metrics.ts";
import { filterCounterNames } from "./filter-constants.ts";

const read = (path: string): string => readFileSync(new URL(`../../${path}`, import.meta.url), "utf8");

export const DASHBOARD_PATH = "manifests/grafana/infergate-dashboard.json";
export const ALERTS_PATH = "manifests/prometheus/infergate-alerts.yaml";
export const ALERT_TESTS_PATH = "manifests/prometheus/infergate-alerts.test.yaml";
export const PROMETHEUS_CONFIG_PATH = "manifests/prometheus/prometheus.yaml";

export interface DashboardQuery { panel: string; refId: string; expr: string }

export function dashboardQueries(): DashboardQuery[] {
  const dashboard = JSON.parse(read(DASHBOARD_PATH)) as { panels: Array<{ title: string; targets: Array<{ refId: string; expr: string }> }> };
  return dashboard.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, refId: t.refId, expr: t.expr })));
}

export interface AlertRule { alert: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }

export function alertRules(): AlertRule[] {
  const file = parseYaml(read(ALERTS_PATH)) as { groups: Array<{ rules: AlertRule[] }> };
  return file.groups.flatMap((g) => g.rules);
}

const KEYWORDS = new Set(["and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "inf", "nan"]);

/**
 * The metric names a PromQL expression reads: bare selectors (`rate(x[1m])` → x) and
 * `__name__="x"` or `__name__=~"regex"` matchers (returned as written, with `regex: true`).
 */
export function metricNames(expr: string): Array<{ name: string; regex: boolean }> {
  const out: Array<{ name: string; regex: boolean }> = [];
  for (const m of expr.matchAll(/__name__\s*(=~|=)\s*"([^"]+)"/g)) out.push({ name: m[2]!, regex: m[1] === "=~" });
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // strings
    .replace(/\{[^}]*\}/g, "") // label matchers
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "") // label lists
    .replace(/\[[^\]]*\]/g, ""); // ranges
  for (const m of bare.matchAll(/(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)) {
    if (!KEYWORDS.has(m[1]!.toLowerCase())) out.push({ name: m[1]!, regex: false });
  }
  return out;
}

/** Envoy's own stats the dashboard and the rules read, and Prometheus' `up`. */
export const ENVOY_STATS = new Set([
  "envoy_cluster_endpoint_rq_total", "envoy_extension_config_discovery_http_filter_infergate_control_plane_connected_state",
  // Copies sent to, and failed at, each mirror cluster.
  "envoy_cluster_upstream_rq_total", "envoy_cluster_upstream_rq_xx",
]);

/** Whether `name` is a series infergate's two sources export (the server's registry, with a
 * histogram's _bucket/_sum/_count; the filter's counters; the Envoy stats above), or `up`. */
export async function exposedName(): Promise<(name: string, regex: boolean) => boolean> {
  const types = new Map((await new ServerMetrics().registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type as unknown)]));
  const filter = filterCounterNames();
  const server = (n: string): boolean => types.has(n) || types.get(n.replace(/_(bucket|sum|count)$/, "")) === "histogram";
  return (name, regex) => {
    if (regex) {
      const re = new RegExp(`^(?:${name})$`);
      return filter.some((n) => re.test(n)) || [...types.keys()].some((n) => re.test(n));
    }
    return name === "up" || server(name) || filter.includes(name) || ENVOY_STATS.has(name);
  };
}
