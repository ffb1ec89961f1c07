// Turns a set of Kubernetes-shaped resources into the routing configuration infergate serves:
// pools with their member endpoints, and models with their criticality and weighted targets.
// Every rejection names the document and the field, so a bad edit is easy to find.
import { parseAllDocuments } from "yaml";
import type { z } from "zod";
import {
  ATTACH_TO_ANNOTATION, attachTo, inferenceModel, inferencePoolV1, inferencePoolV1alpha, pod,
  type AttachTo, type InferenceModel, type Pod,
} from "./resources.ts";
import { DEFAULT_SCHEDULER_CONFIG, infergateConfigDoc, type SchedulerConfig } from "../scheduling/config.ts";

export type Criticality = "critical" | "standard" | "sheddable";

export interface PoolEndpoint { ip: string; port: number; podName: string }

export interface PoolConfig {
  name: string;
  namespace: string;
  apiVersion: string;
  selector: Record<string, string>;
  targetPorts: number[];
  attachTo?: AttachTo;
  endpoints: PoolEndpoint[];
}

export interface ModelTarget { name: string; weight: number }

export interface ModelConfig {
  /** InferenceModel object name (not the model name clients send). */
  resourceName: string;
  namespace: string;
  modelName: string;
  pool: string;
  criticality: Criticality;
  targets: ModelTarget[];
}

export interface RoutingConfig {
  pools: PoolConfig[];
  models: ModelConfig[];
  /** Scrape, scoring and picker settings (an optional InfergateConfig document). */
  scheduler: SchedulerConfig;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join("\n"));
    this.name = "ConfigError";
  }
}

const DEFAULT_NAMESPACE = "default";

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

interface Collected {
  pools: PoolConfig[];
  models: InferenceModel[];
  pods: Pod[];
  scheduler?: SchedulerConfig;
  problems: string[];
}

function parse<T>(schema: z.ZodType<T>, raw: unknown, where: string, problems: string[]): T | undefined {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  problems.push(...describeIssues(where, result.error));
  return undefined;
}

function collectPool(raw: Record<string, unknown>, where: string, into: Collected): void {
  const v1 = String(raw.apiVersion).endsWith("k8s.io/v1");
  if (v1) {
    const p = parse(inferencePoolV1, raw, where, into.problems);
    if (p) into.pools.push(poolFrom(p.metadata, p.apiVersion, p.spec.selector.matchLabels, p.spec.targetPorts.map((t) => t.number), where, into.problems));
    return;
  }
  const p = parse(inferencePoolV1alpha, raw, where, into.problems);
  if (p) into.pools.push(poolFrom(p.metadata, p.apiVersion, p.spec.selector, [p.spec.targetPortNumber], where, into.problems));
}

function poolFrom(
  meta: { name: string; namespace?: string | undefined; annotations?: Record<string, string> | undefined },
  apiVersion: string, selector: Record<string, string>, targetPorts: number[], where: string, problems: string[],
): PoolConfig {
  const pool: PoolConfig = {
    name: meta.name, namespace: meta.namespace ?? DEFAULT_NAMESPACE, apiVersion, selector, targetPorts, endpoints: [],
  };
  const annotation = meta.annotations?.[ATTACH_TO_ANNOTATION];
  if (annotation !== undefined) {
    const docs = parseAllDocuments(annotation);
    const value = docs.length === 1 ? docs[0]!.toJS() : undefined;
    const parsed = parse(attachTo, value, `${where}: metadata.annotations["${ATTACH_TO_ANNOTATION}"]`, problems);
    if (parsed) pool.attachTo = parsed;
  }
  return pool;
}

/** Validates one Kubernetes-shaped object into `into`; `where` names it in messages. */
function collectObject(raw: unknown, where: string, into: Collected): void {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    into.problems.push(`${where}: expected a Kubernetes object (a mapping with apiVersion and kind)`);
    return;
  }
  const obj = raw as Record<string, unknown>;
  switch (obj.kind) {
    case "InferencePool": collectPool(obj, where, into); break;
    case "InferenceModel": { const m = parse(inferenceModel, obj, where, into.problems); if (m) into.models.push(m); break; }
    case "Pod": { const p = parse(pod, obj, where, into.problems); if (p) into.pods.push(p); break; }
    case "InfergateConfig": {
      if (into.scheduler) into.problems.push(`${where}: only one InfergateConfig document is allowed`);
      const c = parse(infergateConfigDoc, obj, where, into.problems);
      if (c) into.scheduler = c.spec;
      break;
    }
    default: into.problems.push(`${where}: kind: unsupported kind ${JSON.stringify(obj.kind)} (expected InferencePool, InferenceModel, Pod or InfergateConfig)`);
  }
}

function emptyCollection(): Collected {
  return { pools: [], models: [], pods: [], problems: [] };
}

/** Collects and validates the documents of one YAML text (several `---`-separated documents). */
function collect(text: string, source: string): Collected {
  const into = emptyCollection();
  const docs = parseAllDocuments(text, { prettyErrors: true });
  if (!Array.isArray(docs)) {
    into.problems.push(`${source}: not a YAML stream`);
    return into;
  }
  docs.forEach((doc, index) => {
    for (const err of doc.errors) into.problems.push(`${source}: YAML error: ${err.message}`);
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
    collectObject(obj, `${source}: ${o.kind ?? "object"} ${o.metadata?.namespace ?? "default"}/${o.metadata?.name ?? "?"}`, into);
  }
  return buildRoutingConfig(into);
}

function podIsReady(p: Pod): boolean {
  if (p.metadata.deletionTimestamp) return false;
  if (p.status.phase !== undefined && p.status.phase !== "Running") return false;
  const ready = p.status.conditions?.find((c) => c.type === "Ready");
  return ready === undefined || ready.status === "True";
}

function matches(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** Pods are pool members when they share its namespace, match its selector and are ready. */
function selectEndpoints(pool: PoolConfig, pods: Pod[]): PoolEndpoint[] {
  const members = pods
    .filter((p) => (p.metadata.namespace ?? DEFAULT_NAMESPACE) === pool.namespace && matches(pool.selector, p.metadata.labels) && podIsReady(p))
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  return members.flatMap((p) => pool.targetPorts.map((port) => ({ ip: p.status.podIP, port, podName: p.metadata.name })));
}

function toCriticality(value: InferenceModel["spec"]["criticality"]): Criticality {
  // The Inference Extension treats an unset criticality as Standard.
  return value === "Critical" ? "critical" : value === "Sheddable" ? "sheddable" : "standard";
}

function modelFrom(m: InferenceModel, problems: string[]): ModelConfig {
  const where = `InferenceModel ${m.metadata.name}`;
  const declared = m.spec.targetModels ?? [];
  const weighted = declared.filter((t) => t.weight !== undefined).length;
  if (weighted !== 0 && weighted !== declared.length) {
    problems.push(`${where}: spec.targetModels: weights must be set on every target or on none`);
  }
  // No targets: requests keep their model name. No weights: targets share traffic equally.
  const targets = declared.length === 0
    ? [{ name: m.spec.modelName, weight: 1 }]
    : declared.map((t) => ({ name: t.name, weight: t.weight ?? 1 }));
  if (targets.every((t) => t.weight === 0)) problems.push(`${where}: spec.targetModels: at least one weight must be positive`);
  return {
    resourceName: m.metadata.name,
    namespace: m.metadata.namespace ?? DEFAULT_NAMESPACE,
    modelName: m.spec.modelName,
    pool: m.spec.poolRef.name,
    criticality: toCriticality(m.spec.criticality),
    targets,
  };
}

/** Builds the routing configuration from validated resources, or throws ConfigError. */
function buildRoutingConfig(collected: Collected): RoutingConfig {
  const problems = [...collected.problems];
  const pools = new Map<string, PoolConfig>();
  for (const p of collected.pools) {
    const key = `${p.namespace}/${p.name}`;
    if (pools.has(key)) problems.push(`InferencePool ${key}: defined twice`);
    pools.set(key, { ...p, endpoints: selectEndpoints(p, collected.pods) });
  }
  const models: ModelConfig[] = [];
  const seen = new Map<string, string>();
  for (const m of collected.models) {
    const model = modelFrom(m, problems);
    if (!pools.has(`${model.namespace}/${model.pool}`)) {
      problems.push(`InferenceModel ${m.metadata.name}: spec.poolRef.name: no InferencePool named ${model.pool} in namespace ${model.namespace}`);
    }
    const clash = seen.get(model.modelName);
    if (clash) problems.push(`InferenceModel ${m.metadata.name}: spec.modelName: ${model.modelName} is already served by InferenceModel ${clash}`);
    seen.set(model.modelName, m.metadata.name);
    models.push(model);
  }
  if (pools.size === 0 && problems.length === 0) problems.push("no InferencePool defined");
  if (problems.length > 0) throw new ConfigError(problems);
  return { pools: [...pools.values()], models, scheduler: collected.scheduler ?? DEFAULT_SCHEDULER_CONFIG };
}

/** Parses and validates a YAML text; `source` names it in error messages. */
export function parseRoutingConfig(text: string, source: string): RoutingConfig {
  return buildRoutingConfig(collect(text, source));
}
