// Turns a set of Kubernetes-shaped resources into the routing configuration infergate serves:
// pools with their member endpoints (and, for a v1 pool that names one, its endpoint picker,
// resolved against the Services given), and models with their criticality and weighted targets.
//
// One bad object affects only itself. An object that does not validate is left out and named,
// with its document or namespace/name and the field, in `problems`; everything else is served.
// What depends on a left-out object goes too, named with the reason (a model whose pool is
// missing). An attach-to naming a Gateway in another namespace needs that namespace's consent (a
// ReferenceGrant); without it the pool is served, but not attached there. Pods are looked at only
// when a pool selects them; a selected Pod without an IP yet, or not ready, is skipped and counted
// per pool (`skipped`), not treated as a problem.
import { isIP } from "node:net";
import { parseAllDocuments } from "yaml";
import type { z } from "zod";
import {
  ATTACH_TO_ANNOTATION, attachTo, GROUP_GATEWAY, httpRoute, inferenceModel, inferenceModelRewrite, inferenceObjective, inferencePoolV1, inferencePoolV1alpha, pod,
  referenceGrant, service, type AttachTo, type EndpointPickerRef, type HttpRoute, type InferenceModel, type InferenceModelRewrite, type InferenceObjective, type Pod,
  type ReferenceGrant, type Service,
} from "./resources.ts";
import { collectRoute, type RouteConfig } from "./routes.ts";
import { resolveEndpointPicker, serviceKey, type EndpointPicker } from "./endpoint-picker.ts";
import { DEFAULT_SCHEDULER_CONFIG, infergateConfigDoc, type SchedulerConfig } from "../scheduling/config.ts";

export type Criticality = "critical" | "standard" | "sheddable";

export interface PoolEndpoint { ip: string; port: number; podName: string }

/** Why a Pod a pool selects is not one of its endpoints. */
export type SkipReason = "no-ip" | "invalid-ip" | "not-ready";

export interface PoolConfig {
  /** `<namespace>/<name>`: the pool's identity everywhere (snapshot, header, cluster, metrics). */
  id: string;
  name: string;
  namespace: string;
  apiVersion: string;
  selector: Record<string, string>;
  targetPorts: number[];
  /** The Gateway (and port) the pool's attach-to annotation names, if it may attach there. */
  attachTo?: AttachTo;
  /** The endpoint picker a v1 pool's `endpointPickerRef` names; absent when it names none, and
   * then infergate picks. */
  picker?: EndpointPicker;
  /** The Gateway an attach-to named without permission (another namespace, no ReferenceGrant). */
  refusedAttachTo?: AttachTo;
  endpoints: PoolEndpoint[];
  /** Selected Pods that are not endpoints, by reason. */
  skipped: Partial<Record<SkipReason, number>>;
}

export interface ModelTarget { name: string; weight: number }

export interface ModelConfig {
  /** The kind of object that declares the model (absent: an InferenceModel). */
  source?: "InferenceModel" | "InferenceModelRewrite";
  /** The object's name (not the model name clients send). */
  resourceName: string;
  namespace: string;
  modelName: string;
  /** The pool's id (`<namespace>/<name>`, the model's own namespace). */
  pool: string;
  criticality: Criticality;
  targets: ModelTarget[];
}

/** A Kubernetes object, by kind, namespace and name. */
export interface ObjectRef { kind: string; namespace: string; name: string }

/** An object left out of the configuration (or a document that is not one), and why. */
export interface Problem {
  /** Undefined when the document does not even name an object. */
  object?: ObjectRef | undefined;
  /** `<where>: <field>: <message>`, where names the document or object. */
  text: string;
  /** A status condition reason for it, when more precise than "Invalid" (e.g. RefNotPermitted). */
  reason?: string | undefined;
}

/** An InferenceObjective: requests naming it (x-gateway-inference-objective) in its pool get its priority. */
export interface ObjectiveConfig {
  resourceName: string;
  namespace: string;
  /** The pool's id. */
  pool: string;
  /** Negative: sheddable. Unset in the object means 0. */
  priority: number;
}

export interface RoutingConfig {
  pools: PoolConfig[];
  models: ModelConfig[];
  objectives: ObjectiveConfig[];
  /** HTTPRoute rules whose backends are InferencePools (routes.ts). */
  routes: RouteConfig[];
  /** Scrape, scoring and picker settings (an optional InfergateConfig document). */
  scheduler: SchedulerConfig;
  /** What was left out, and why. */
  problems: Problem[];
}

/** Thrown when there is no configuration to serve at all. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join("\n"));
    this.name = "ConfigError";
  }
}

const DEFAULT_NAMESPACE = "default";

export function poolId(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

function describeIssues(where: string, error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("").replace(/^\./, "");
    return `${where}: ${path || "(document)"}: ${issue.message}`;
  });
}

function docLabel(index: number, raw: Record<string, unknown>): string {
  const kind = typeof raw.kind === "string" ? raw.kind : "document";
  const meta = raw.metadata as Record<string, unknown> | undefined;
  const name = meta && typeof meta.name === "string" ? ` ${meta.name}` : "";
  return `document ${index + 1} (${kind}${name})`;
}

/** The object a raw document claims to be, if it says. */
function refOf(raw: Record<string, unknown>): ObjectRef | undefined {
  const meta = raw.metadata as { name?: unknown; namespace?: unknown } | undefined;
  if (typeof raw.kind !== "string" || typeof meta?.name !== "string") return undefined;
  return { kind: raw.kind, namespace: typeof meta.namespace === "string" ? meta.namespace : DEFAULT_NAMESPACE, name: meta.name };
}

export interface Located<T> { value: T; where: string; object: ObjectRef | undefined }

interface Collected {
  pools: Array<Located<PoolConfig & { pickerRef?: EndpointPickerRef }>>;
  models: Array<Located<InferenceModel>>;
  objectives: Array<Located<InferenceObjective>>;
  rewrites: Array<Located<InferenceModelRewrite>>;
  routes: Array<Located<HttpRoute>>;
  pods: Pod[];
  services: Service[];
  grants: ReferenceGrant[];
  scheduler?: SchedulerConfig;
  problems: Problem[];
}

function parse<T>(schema: z.ZodType<T>, raw: Record<string, unknown>, where: string, into: Collected): T | undefined {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const object = refOf(raw);
  into.problems.push(...describeIssues(where, result.error).map((text) => ({ object, text })));
  return undefined;
}

function collectPool(raw: Record<string, unknown>, where: string, into: Collected): void {
  let shape: { metadata: { name: string; namespace?: string | undefined; annotations?: Record<string, string> | undefined }; apiVersion: string; selector: Record<string, string>; targetPorts: number[]; pickerRef?: EndpointPickerRef | undefined } | undefined;
  if (String(raw.apiVersion).endsWith("k8s.io/v1")) {
    const p = parse(inferencePoolV1, raw, where, into);
    if (p) shape = { metadata: p.metadata, apiVersion: p.apiVersion, selector: p.spec.selector.matchLabels, targetPorts: p.spec.targetPorts.map((t) => t.number), pickerRef: p.spec.endpointPickerRef };
  } else {
    const p = parse(inferencePoolV1alpha, raw, where, into);
    if (p) shape = { metadata: p.metadata, apiVersion: p.apiVersion, selector: p.spec.selector, targetPorts: [p.spec.targetPortNumber] };
  }
  if (!shape) return;
  const p = shape;
  const namespace = p.metadata.namespace ?? DEFAULT_NAMESPACE;
  const object = { kind: "InferencePool", namespace, name: p.metadata.name };
  const pool: PoolConfig & { pickerRef?: EndpointPickerRef } = {
    id: poolId(namespace, p.metadata.name), name: p.metadata.name, namespace, apiVersion: p.apiVersion,
    selector: p.selector, targetPorts: p.targetPorts, endpoints: [], skipped: {},
    ...(p.pickerRef ? { pickerRef: p.pickerRef } : {}),
  };
  const annotation = p.metadata.annotations?.[ATTACH_TO_ANNOTATION];
  if (annotation !== undefined) {
    const docs = parseAllDocuments(annotation);
    const value = docs.length === 1 ? docs[0]!.toJS() : undefined;
    const parsed = attachTo.safeParse(value);
    if (!parsed.success) {
      into.problems.push(...describeIssues(`${where}: metadata.annotations["${ATTACH_TO_ANNOTATION}"]`, parsed.error).map((text) => ({ object, text })));
      return;
    }
    pool.attachTo = parsed.data;
  }
  into.pools.push({ value: pool, where, object });
}

/** Validates one Kubernetes-shaped object into `into`; `where` names it in messages. */
function collectObject(raw: unknown, where: string, into: Collected): void {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    into.problems.push({ text: `${where}: expected a Kubernetes object (a mapping with apiVersion and kind)` });
    return;
  }
  const obj = raw as Record<string, unknown>;
  switch (obj.kind) {
    case "InferencePool": collectPool(obj, where, into); break;
    case "InferenceModel": {
      const m = parse(inferenceModel, obj, where, into);
      if (m) into.models.push({ value: m, where, object: { kind: "InferenceModel", namespace: m.metadata.namespace ?? DEFAULT_NAMESPACE, name: m.metadata.name } });
      break;
    }
    case "InferenceObjective": collectNamed(inferenceObjective, obj, where, into.objectives, into); break;
    case "InferenceModelRewrite": collectNamed(inferenceModelRewrite, obj, where, into.rewrites, into); break;
    case "HTTPRoute": collectNamed(httpRoute, obj, where, into.routes, into); break;
    case "Pod": { const p = parse(pod, obj, where, into); if (p) into.pods.push(p); break; }
    case "Service": { const s = parse(service, obj, where, into); if (s) into.services.push(s); break; }
    case "ReferenceGrant": { const g = parse(referenceGrant, obj, where, into); if (g) into.grants.push(g); break; }
    case "InfergateConfig": {
      if (into.scheduler) { into.problems.push({ object: refOf(obj), text: `${where}: only one InfergateConfig document is allowed; this one is ignored` }); break; }
      const c = parse(infergateConfigDoc, obj, where, into);
      if (c) into.scheduler = c.spec;
      break;
    }
    default: into.problems.push({ object: refOf(obj), text: `${where}: kind: unsupported kind ${JSON.stringify(obj.kind)} (expected InferencePool, InferenceModel, InferenceObjective, InferenceModelRewrite, HTTPRoute, Pod, Service, ReferenceGrant or InfergateConfig)` });
  }
}

/** Validates an object of a kind that needs nothing beyond its schema, into `list`. */
function collectNamed<T extends { kind: string; metadata: { name: string; namespace?: string | undefined } }>(
  schema: z.ZodType<T>, raw: Record<string, unknown>, where: string, list: Array<Located<T>>, into: Collected,
): void {
  const v = parse(schema, raw, where, into);
  if (v) list.push({ value: v, where, object: { kind: v.kind, namespace: v.metadata.namespace ?? DEFAULT_NAMESPACE, name: v.metadata.name } });
}

function emptyCollection(): Collected {
  return { pools: [], models: [], objectives: [], rewrites: [], routes: [], pods: [], services: [], grants: [], problems: [] };
}

/** Collects and validates the documents of one YAML text (several `---`-separated documents). */
function collect(text: string, source: string): Collected {
  const into = emptyCollection();
  const docs = parseAllDocuments(text, { prettyErrors: true });
  if (!Array.isArray(docs)) {
    into.problems.push({ text: `${source}: not a YAML stream` });
    return into;
  }
  docs.forEach((doc, index) => {
    for (const err of doc.errors) into.problems.push({ text: `${source}: document ${index + 1}: YAML error: ${err.message}` });
    if (doc.errors.length > 0) return;
    const raw = doc.toJS() as unknown;
    if (raw === null || raw === undefined) return; // empty document
    const label = typeof raw === "object" && !Array.isArray(raw) ? docLabel(index, raw as Record<string, unknown>) : `document ${index + 1}`;
    collectObject(raw, `${source}: ${label}`, into);
  });
  return into;
}

/** Builds the routing configuration from objects read from the Kubernetes API (or anywhere). */
export function routingConfigFromObjects(objects: unknown[], source: string): RoutingConfig {
  const into = emptyCollection();
  for (const obj of objects) {
    const o = obj as { kind?: string; metadata?: { namespace?: string; name?: string } };
    collectObject(obj, `${source}: ${o.kind ?? "object"} ${o.metadata?.namespace ?? DEFAULT_NAMESPACE}/${o.metadata?.name ?? "?"}`, into);
  }
  return buildRoutingConfig(into);
}

/** Why a selected Pod is not an endpoint, or undefined if it is one. */
function skipReason(p: Pod): SkipReason | undefined {
  const status = p.status ?? {};
  if (p.metadata.deletionTimestamp) return "not-ready";
  if (status.phase !== undefined && status.phase !== "Running") return "not-ready";
  const ready = status.conditions?.find((c) => c.type === "Ready");
  if (ready !== undefined && ready.status !== "True") return "not-ready";
  if (!status.podIP) return "no-ip";
  if (isIP(status.podIP) === 0) return "invalid-ip";
  return undefined;
}

function matches(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** The pool's endpoints: the Pods in its namespace that match its selector, are ready and have an IP. */
function selectEndpoints(pool: PoolConfig, pods: Pod[]): void {
  const selected = pods
    .filter((p) => (p.metadata.namespace ?? DEFAULT_NAMESPACE) === pool.namespace && matches(pool.selector, p.metadata.labels))
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  for (const p of selected) {
    const reason = skipReason(p);
    if (reason) { pool.skipped[reason] = (pool.skipped[reason] ?? 0) + 1; continue; }
    for (const port of pool.targetPorts) pool.endpoints.push({ ip: p.status!.podIP!, port, podName: p.metadata.name });
  }
}

/** Whether a ReferenceGrant in the Gateway's namespace lets InferencePools of the pool's group in
 * the pool's namespace refer to that Gateway (Gateway API's rule for cross-namespace references). */
function attachGranted(pool: PoolConfig, target: AttachTo, grants: ReferenceGrant[]): boolean {
  const gatewayNamespace = target.namespace ?? pool.namespace;
  if (gatewayNamespace === pool.namespace) return true;
  const group = pool.apiVersion.split("/")[0];
  return grants.some((g) => (g.metadata.namespace ?? DEFAULT_NAMESPACE) === gatewayNamespace
    && g.spec.from.some((f) => f.group === group && f.kind === "InferencePool" && f.namespace === pool.namespace)
    && g.spec.to.some((t) => t.group === GROUP_GATEWAY && t.kind === "Gateway" && (t.name === undefined || t.name === target.name)));
}

/** Drops an attach-to another namespace has not consented to (keeping it as refusedAttachTo), and
 * says why; undefined when the attach-to stands. */
function refuseAttachTo(pool: PoolConfig, grants: ReferenceGrant[], where: string): string | undefined {
  const target = pool.attachTo;
  if (!target || attachGranted(pool, target, grants)) return undefined;
  pool.refusedAttachTo = target;
  pool.attachTo = undefined;
  const gateway = `${target.namespace}/${target.name}`;
  return `${where}: metadata.annotations["${ATTACH_TO_ANNOTATION}"]: Gateway ${gateway} is in another namespace, and no ReferenceGrant in namespace ${target.namespace} `
    + `lets InferencePool (${pool.apiVersion.split("/")[0]}) from namespace ${pool.namespace} refer to it; the pool is not attached to that Gateway`;
}

function toCriticality(value: InferenceModel["spec"]["criticality"]): Criticality {
  // The Inference Extension treats an unset criticality as Standard.
  return value === "Critical" ? "critical" : value === "Sheddable" ? "sheddable" : "standard";
}

/** The model, or the reasons it cannot be served. */
function modelFrom(m: InferenceModel, where: string): ModelConfig | string[] {
  const declared = m.spec.targetModels ?? [];
  const weighted = declared.filter((t) => t.weight !== undefined).length;
  const problems: string[] = [];
  if (weighted !== 0 && weighted !== declared.length) problems.push(`${where}: spec.targetModels: weights must be set on every target or on none`);
  // No targets: requests keep their model name. No weights: targets share traffic equally.
  const targets = declared.length === 0
    ? [{ name: m.spec.modelName, weight: 1 }]
    : declared.map((t) => ({ name: t.name, weight: t.weight ?? 1 }));
  if (targets.every((t) => t.weight === 0)) problems.push(`${where}: spec.targetModels: at least one weight must be positive`);
  if (problems.length > 0) return problems;
  const namespace = m.metadata.namespace ?? DEFAULT_NAMESPACE;
  return { resourceName: m.metadata.name, namespace, modelName: m.spec.modelName, pool: poolId(namespace, m.spec.poolRef.name), criticality: toCriticality(m.spec.criticality), targets };
}

/** Older first (the Gateway API's rule for conflicts), then by namespace/name. Objects without a
 * creation time (the YAML file) come after those with one, by namespace/name. */
function olderFirst(a: Located<{ metadata: { creationTimestamp?: string | undefined } }>, b: Located<{ metadata: { creationTimestamp?: string | undefined } }>): number {
  const key = (m: typeof a) => `${m.value.metadata.creationTimestamp ?? "~"} ${m.object!.namespace}/${m.object!.name}`;
  return key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
}

/** Builds the routing configuration from validated resources, leaving out what cannot be served. */
function buildRoutingConfig(collected: Collected): RoutingConfig {
  const problems = [...collected.problems];
  const pools = new Map<string, PoolConfig>();
  const services = new Map(collected.services.map((s) => [serviceKey(s.metadata.namespace ?? DEFAULT_NAMESPACE, s.metadata.name), s]));
  for (const { value: located, where, object } of collected.pools) {
    const { pickerRef, ...p } = located;
    if (pools.has(p.id)) { problems.push({ object, text: `${where}: InferencePool ${p.id} is defined twice; this one is ignored` }); continue; }
    selectEndpoints(p, collected.pods);
    if (pickerRef) p.picker = resolveEndpointPicker(pickerRef, p.namespace, services);
    const refused = refuseAttachTo(p, collected.grants, where);
    if (refused) problems.push({ object, text: refused, reason: "RefNotPermitted" });
    pools.set(p.id, p);
  }
  // Model names are one namespace for the whole snapshot: a name served twice goes to the older
  // InferenceModel, and only the newer one is left out.
  const kept = new Map<Located<InferenceModel>, ModelConfig>();
  const servedBy = new Map<string, ObjectRef>();
  for (const located of [...collected.models].sort(olderFirst)) {
    const { value: m, where, object } = located;
    const model = modelFrom(m, where);
    if (Array.isArray(model)) { problems.push(...model.map((text) => ({ object, text }))); continue; }
    if (!pools.has(model.pool)) {
      problems.push({ object, text: `${where}: spec.poolRef.name: no valid InferencePool named ${m.spec.poolRef.name} in namespace ${model.namespace}` });
      continue;
    }
    const owner = servedBy.get(model.modelName);
    if (owner) {
      problems.push({ object, text: `${where}: spec.modelName: ${model.modelName} is already served by InferenceModel ${owner.namespace}/${owner.name}` });
      continue;
    }
    servedBy.set(model.modelName, object!);
    kept.set(located, model);
  }
  // In the order they came, so the snapshot does not reorder when an unrelated model changes.
  const models = collected.models.flatMap((m) => kept.get(m) ?? []);
  models.push(...rewriteModels(collected.rewrites, pools, servedBy, problems));
  const objectives = collected.objectives.flatMap((o) => objectiveFrom(o, pools, problems));
  return { pools: [...pools.values()], models, objectives, routes: routesFrom(collected.routes, pools, problems), scheduler: collected.scheduler ?? DEFAULT_SCHEDULER_CONFIG, problems };
}

/** A model name that an InferenceModelRewrite rule with no `matches` applies to: any model no
 * InferenceModel and no exact rewrite declares. */
export const ANY_MODEL = "*";

/** Targets with weights on every one or none (then equal), as for InferenceModel targetModels. */
function rewriteTargets(targets: InferenceModelRewrite["spec"]["rules"][number]["targets"]): ModelTarget[] | string {
  const weighted = targets.filter((t) => t.weight !== undefined).length;
  if (weighted !== 0 && weighted !== targets.length) return "weights must be set on every target or on none";
  return targets.map((t) => ({ name: t.modelRewrite, weight: t.weight ?? 1 }));
}

/**
 * The models InferenceModelRewrites declare. Model names stay one name space: an InferenceModel
 * always wins over a rewrite for the same name (the rewrite's match is left out and named), and
 * between rewrites the older one wins, then the first rule, as the Inference Extension orders
 * them. A rule without matches applies to every model nobody else declares (ANY_MODEL).
 */
function rewriteModels(rewrites: Array<Located<InferenceModelRewrite>>, pools: ReadonlyMap<string, PoolConfig>, servedBy: Map<string, ObjectRef>, problems: Problem[]): ModelConfig[] {
  const out: ModelConfig[] = [];
  for (const { value: w, where, object } of [...rewrites].sort(olderFirst)) {
    const namespace = object!.namespace;
    const pool = poolId(namespace, w.spec.poolRef.name);
    if (!pools.has(pool)) { problems.push({ object, text: `${where}: spec.poolRef.name: no valid InferencePool named ${w.spec.poolRef.name} in namespace ${namespace}` }); continue; }
    w.spec.rules.forEach((rule, r) => {
      const targets = rewriteTargets(rule.targets);
      if (typeof targets === "string") { problems.push({ object, text: `${where}: spec.rules[${r}].targets: ${targets}; rule ${r} is left out` }); return; }
      const names = rule.matches && rule.matches.length > 0 ? rule.matches.map((m, k) => ({ name: m.model.value, field: `spec.rules[${r}].matches[${k}].model.value` })) : [{ name: ANY_MODEL, field: `spec.rules[${r}].matches` }];
      for (const { name, field } of names) {
        const owner = servedBy.get(name);
        if (owner) {
          const what = name === ANY_MODEL ? "every other model" : name;
          problems.push({ object, text: `${where}: ${field}: ${what} is already ${owner.kind === "InferenceModel" ? "served by" : "rewritten by"} ${owner.kind} ${owner.namespace}/${owner.name}${owner.kind === "InferenceModel" ? " (an InferenceModel wins over an InferenceModelRewrite)" : ""}; this match is left out` });
          continue;
        }
        servedBy.set(name, object!);
        out.push({ source: "InferenceModelRewrite", resourceName: object!.name, namespace, modelName: name, pool, criticality: "standard", targets });
      }
    });
  }
  return out;
}

function objectiveFrom({ value: o, where, object }: Located<InferenceObjective>, pools: ReadonlyMap<string, PoolConfig>, problems: Problem[]): ObjectiveConfig[] {
  const namespace = object!.namespace;
  const pool = poolId(namespace, o.spec.poolRef.name);
  if (!pools.has(pool)) { problems.push({ object, text: `${where}: spec.poolRef.name: no valid InferencePool named ${o.spec.poolRef.name} in namespace ${namespace}` }); return []; }
  return [{ resourceName: object!.name, namespace, pool, priority: o.spec.priority ?? 0 }];
}

function routesFrom(routes: Array<Located<HttpRoute>>, pools: ReadonlyMap<string, PoolConfig>, problems: Problem[]): RouteConfig[] {
  const seen = new Set<string>();
  return routes.flatMap((located) => {
    const key = `${located.object!.namespace}/${located.object!.name}`;
    if (seen.has(key)) { problems.push({ object: located.object, text: `${located.where}: HTTPRoute ${key} is defined twice; this one is ignored` }); return []; }
    seen.add(key);
    const got = collectRoute(located, new Set(pools.keys()), poolId);
    problems.push(...got.problems);
    return got.routes;
  });
}

/** Parses and validates a YAML text; `source` names it in messages. */
export function parseRoutingConfig(text: string, source: string): RoutingConfig {
  return buildRoutingConfig(collect(text, source));
}
