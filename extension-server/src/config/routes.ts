// HTTPRoute rules whose backends are InferencePools, as infergate serves them: the pools (with
// their weights) the filter chooses between, and the pools RequestMirror filters copy requests to.
//
// Each rule is named as Envoy Gateway names its destination and cluster,
// `httproute/<namespace>/<name>/rule/<index>`, and each mirror as Envoy Gateway names the mirror's
// cluster, `<rule cluster>-mirror-<filter index>`. The filter reads the name of the cluster the
// route chose (Envoy's `xds.cluster_name`), so the same snapshot record serves Envoy Gateway's
// routes and the standalone bootstrap's, which uses the same names.
//
// A rule that references no InferencePool (as a backend or a mirror) is not infergate's and is
// ignored without a word: in a cluster most HTTPRoutes are. A rule infergate cannot serve (pools
// mixed with other backends, a pool that does not exist or lives in another namespace, every
// weight 0) is left out and named with its field; the route's other rules apply.
import { GROUP_K8S, GROUP_X_K8S, type HttpRoute } from "./resources.ts";
import type { Located, ObjectRef, Problem } from "./routing-config.ts";

export interface StringMatchConfig { name: string; type: "Exact" | "RegularExpression"; value: string }

export interface RouteMatchConfig {
  path: { type: "Exact" | "PathPrefix" | "RegularExpression"; value: string };
  method?: string | undefined;
  headers: StringMatchConfig[];
  queryParams: StringMatchConfig[];
}

export interface RouteBackend { pool: string; weight: number }

export interface RouteMirror {
  /** The mirror's cluster: `<rule cluster>-mirror-<filter index>`. */
  cluster: string;
  pool: string;
  /** Share of requests copied, 0-100 (fractions allowed). */
  percent: number;
}

export interface RouteConfig {
  /** `httproute/<namespace>/<name>/rule/<index>`: Envoy Gateway's cluster name for the rule. */
  cluster: string;
  route: ObjectRef;
  rule: number;
  /** The `port` of the route's parentRefs (standalone: the inference listeners it is served on);
   * empty: the default inference listener. */
  ports: number[];
  matches: RouteMatchConfig[];
  backends: RouteBackend[];
  mirrors: RouteMirror[];
}

type Rule = NonNullable<HttpRoute["spec"]["rules"]>[number];
type BackendRef = { group?: string | undefined; kind?: string | undefined; name: string; namespace?: string | undefined };

const isPoolRef = (ref: BackendRef): boolean => ref.kind === "InferencePool" && (ref.group === GROUP_K8S || ref.group === GROUP_X_K8S);

/** Why Envoy's RE2 would refuse a regular expression (approximated: what JavaScript refuses, plus
 * lookaround and backreferences, which RE2 does not have). A refused one would stop Envoy. */
function regexProblem(value: string): string | undefined {
  if (/\(\?<?[=!]|\\[1-9]/.test(value)) return "RE2 has no lookaround or backreferences";
  try { new RegExp(value); return undefined; } catch (err) { return (err as Error).message; }
}

function matchesOf(rule: Rule, field: string, problems: string[]): RouteMatchConfig[] {
  const declared = rule.matches && rule.matches.length > 0 ? rule.matches : [{}];
  return declared.map((m: NonNullable<Rule["matches"]>[number], k) => {
    const path = { type: m.path?.type ?? "PathPrefix", value: m.path?.value ?? "/" };
    if (path.type !== "RegularExpression" && !path.value.startsWith("/")) problems.push(`${field}.matches[${k}].path.value: must start with "/"`);
    if (path.type === "RegularExpression") {
      const bad = regexProblem(path.value);
      if (bad) problems.push(`${field}.matches[${k}].path.value: not a regular expression: ${bad}`);
    }
    const strings = (list: typeof m.headers, what: string): StringMatchConfig[] => (list ?? []).map((h, n) => {
      const type = h.type ?? "Exact";
      if (type === "RegularExpression") {
        const bad = regexProblem(h.value);
        if (bad) problems.push(`${field}.matches[${k}].${what}[${n}].value: not a regular expression: ${bad}`);
      }
      return { name: h.name, type, value: h.value };
    });
    return { path, method: m.method, headers: strings(m.headers, "headers"), queryParams: strings(m.queryParams, "queryParams") };
  });
}

/** The rules of one HTTPRoute that infergate serves, and the problems of those it leaves out. */
export function collectRoute(located: Located<HttpRoute>, pools: ReadonlySet<string>, poolId: (ns: string, name: string) => string): { routes: RouteConfig[]; problems: Problem[] } {
  const { value: r, where, object } = located;
  const namespace = object!.namespace;
  const routes: RouteConfig[] = [];
  const problems: Problem[] = [];
  const ports = [...new Set((r.spec.parentRefs ?? []).flatMap((p) => (p.port === undefined ? [] : [p.port])))];
  (r.spec.rules ?? []).forEach((rule, i) => {
    const field = `spec.rules[${i}]`;
    const backendRefs = rule.backendRefs ?? [];
    const mirrorFilters = (rule.filters ?? []).map((f, j) => ({ f, j })).filter(({ f }) => f.type === "RequestMirror" && f.requestMirror !== undefined);
    const poolMirrors = mirrorFilters.filter(({ f }) => isPoolRef(f.requestMirror!.backendRef));
    if (!backendRefs.some(isPoolRef) && poolMirrors.length === 0) return; // not infergate's rule
    const bad: string[] = [];
    const resolve = (ref: BackendRef, at: string): string | undefined => {
      if ((ref.namespace ?? namespace) !== namespace) { bad.push(`${at}.namespace: an InferencePool in another namespace (${ref.namespace}) is not supported`); return undefined; }
      const id = poolId(namespace, ref.name);
      if (!pools.has(id)) { bad.push(`${at}.name: no valid InferencePool named ${ref.name} in namespace ${namespace}`); return undefined; }
      return id;
    };
    if (!backendRefs.some(isPoolRef)) {
      bad.push(`${field}.backendRefs: a rule that mirrors to an InferencePool needs InferencePool backends`);
    } else if (!backendRefs.every(isPoolRef)) {
      bad.push(`${field}.backendRefs: every backendRef must be an InferencePool (group ${GROUP_K8S} or ${GROUP_X_K8S}); a rule mixing pools with other backends is not served`);
    }
    const backends = backendRefs.flatMap((ref, k) => {
      if (!isPoolRef(ref)) return [];
      const pool = resolve(ref, `${field}.backendRefs[${k}]`);
      return pool ? [{ pool, weight: ref.weight ?? 1 }] : [];
    });
    if (backendRefs.length > 0 && backendRefs.every((ref) => ref.weight === 0)) bad.push(`${field}.backendRefs: every weight is 0`);
    const cluster = `httproute/${namespace}/${object!.name}/rule/${i}`;
    const mirrors = poolMirrors.flatMap(({ f, j }) => {
      const m = f.requestMirror!;
      const pool = resolve(m.backendRef, `${field}.filters[${j}].requestMirror.backendRef`);
      const percent = m.fraction ? (100 * m.fraction.numerator) / (m.fraction.denominator ?? 100) : (m.percent ?? 100);
      return pool ? [{ cluster: `${cluster}-mirror-${j}`, pool, percent }] : [];
    });
    const matches = matchesOf(rule, field, bad);
    if (bad.length > 0) {
      problems.push(...bad.map((text) => ({ object, text: `${where}: ${text}; rule ${i} is left out` })));
      return;
    }
    routes.push({ cluster, route: object!, rule: i, ports, matches, backends, mirrors });
  });
  return { routes, problems };
}
