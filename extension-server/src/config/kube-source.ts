// Kubernetes source of truth: informers (list + watch) on InferencePool (x-k8s v1alpha1 and
// v1alpha2, k8s.io v1), InferenceModel (x-k8s v1alpha1, v1alpha2), InferenceObjective and
// InferenceModelRewrite (x-k8s v1alpha2), HTTPRoute (gateway.networking.k8s.io v1: the weights
// and mirrors of rules whose backends are InferencePools), ReferenceGrant (Gateway API v1,
// v1beta1: consent to a cross-namespace attach-to), Pods, and the Services v1 pools name as their
// endpoint picker. Any change rebuilds the routing configuration through the same validation as the
// YAML file: an invalid object is left out on its own and everything else is served. It watches
// every namespace, or only the namespaces it is given (a namespaced install: Roles in those
// namespaces are enough).
// An InferencePool whose attach-to names a Gateway gets status conditions (Accepted, ResolvedRefs)
// as the Inference Extension defines them, with the Pods it skipped and whether its endpoint
// picker resolves, in infergate's own parent entry; other controllers' entries are kept
// (pool-status.ts). Each InferenceModel, InferenceObjective and InferenceModelRewrite whose poolRef
// names such a pool gets Accepted, naming the field when it (or, for a rewrite, one of its matches)
// is left out; objects on other pools are not infergate's to report on. HTTPRoute status is Envoy
// Gateway's; a rule infergate leaves out is named in the log and in infergate_config_problems.
import {
  CoreV1Api, CustomObjectsApi, KubeConfig, makeInformer, PatchStrategy, setHeaderOptions,
  type Informer, type KubernetesObject, type ObjectCache,
} from "@kubernetes/client-node";
import { claimedParent, CONTROLLER_NAME, mergeParents, type Condition, type ParentRef, type ParentStatus } from "./pool-status.ts";
import { poolId, routingConfigFromObjects, type RoutingConfig, type SkipReason } from "./routing-config.ts";
import { GROUP_GATEWAY, GROUP_K8S, GROUP_X_K8S } from "./resources.ts";
import type { EndpointPicker } from "./endpoint-picker.ts";
import type { ConfigSource, SourceEvents } from "./source.ts";

export interface Resource { group: string; version: string; plural: string; kind: string; rank: number }

/** The custom resources watched (besides Pods), in every version infergate reads. Newer versions
 * win when a CRD serves the same object under several versions. */
export const WATCHED: readonly Resource[] = [
  { group: GROUP_K8S, version: "v1", plural: "inferencepools", kind: "InferencePool", rank: 3 },
  { group: GROUP_X_K8S, version: "v1alpha2", plural: "inferencepools", kind: "InferencePool", rank: 2 },
  { group: GROUP_X_K8S, version: "v1alpha1", plural: "inferencepools", kind: "InferencePool", rank: 1 },
  { group: GROUP_X_K8S, version: "v1alpha2", plural: "inferencemodels", kind: "InferenceModel", rank: 2 },
  { group: GROUP_X_K8S, version: "v1alpha1", plural: "inferencemodels", kind: "InferenceModel", rank: 1 },
  { group: GROUP_X_K8S, version: "v1alpha2", plural: "inferenceobjectives", kind: "InferenceObjective", rank: 2 },
  { group: GROUP_X_K8S, version: "v1alpha2", plural: "inferencemodelrewrites", kind: "InferenceModelRewrite", rank: 2 },
  { group: GROUP_GATEWAY, version: "v1", plural: "httproutes", kind: "HTTPRoute", rank: 2 },
  { group: GROUP_GATEWAY, version: "v1", plural: "referencegrants", kind: "ReferenceGrant", rank: 2 },
  { group: GROUP_GATEWAY, version: "v1beta1", plural: "referencegrants", kind: "ReferenceGrant", rank: 1 },
];

/** The kinds besides InferencePool whose status infergate writes (each names its pool in
 * spec.poolRef), and their plurals. */
const POOL_REFERRER_PLURALS: Record<string, string> = {
  InferenceModel: "inferencemodels", InferenceObjective: "inferenceobjectives", InferenceModelRewrite: "inferencemodelrewrites",
};

/** Every kind whose status subresource infergate writes (the install's RBAC must allow it). */
export const STATUS_KINDS: ReadonlySet<string> = new Set(["InferencePool", ...Object.keys(POOL_REFERRER_PLURALS)]);

type Cache = Informer<KubernetesObject> & ObjectCache<KubernetesObject>;

export interface KubeSourceOptions {
  /** Watch only these namespaces (a namespaced install); empty or undefined: every namespace. */
  namespaces?: readonly string[] | undefined;
  /** How long changes coalesce before the configuration is rebuilt. */
  debounceMs?: number | undefined;
}

export class KubeSource implements ConfigSource {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly informers: Array<{ resource?: Resource; coreKind?: CoreKind; cache: Cache }> = [];
  private rebuildTimer?: NodeJS.Timeout;
  private stopped = false;
  private readonly lastStatus = new Map<string, string>();
  /** Conditions last written per pool, so lastTransitionTime only moves when a condition changes. */
  private readonly lastConditions = new Map<string, Condition[]>();
  /** The parents infergate wrote per pool (to recognise its entries if controllerName was pruned). */
  private readonly writtenParents = new Map<string, ParentRef[]>();
  /** Pools whose Gateway another controller reports on, logged once each. */
  private readonly yielded = new Set<string>();
  private lastInput = "";
  private events: SourceEvents = { onConfig: () => undefined, onRejected: () => undefined };

  readonly description = "the cluster's resources";

  private readonly debounceMs: number;
  /** Watched namespaces; undefined: all. */
  private readonly namespaces: readonly string[] | undefined;

  constructor(private readonly kc: KubeConfig, opts: KubeSourceOptions = {}) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
    this.debounceMs = opts.debounceMs ?? 20;
    this.namespaces = opts.namespaces && opts.namespaces.length > 0 ? opts.namespaces : undefined;
  }

  /** Starts an informer for every served version (a version the cluster does not serve is skipped),
   * and builds the first configuration once they have listed. */
  async start(events: SourceEvents): Promise<void> {
    this.events = events;
    for (const namespace of this.namespaces ?? [undefined]) {
      const where = namespace ? ` in namespace ${namespace}` : "";
      for (const r of WATCHED) {
        const list = () => namespace
          ? this.custom.listNamespacedCustomObject({ group: r.group, version: r.version, namespace, plural: r.plural })
          : this.custom.listClusterCustomObject({ group: r.group, version: r.version, plural: r.plural });
        const served = await servedVersion(list, (why) => this.events.log?.(`not watching ${r.plural}.${r.group}/${r.version}${where}: ${why}`));
        if (!served) continue;
        const path = namespace ? `/apis/${r.group}/${r.version}/namespaces/${namespace}/${r.plural}` : `/apis/${r.group}/${r.version}/${r.plural}`;
        this.add(makeInformer(this.kc, path, list as never), r);
      }
      this.add(namespace
        ? makeInformer(this.kc, `/api/v1/namespaces/${namespace}/pods`, () => this.core.listNamespacedPod({ namespace }) as never)
        : makeInformer(this.kc, "/api/v1/pods", () => this.core.listPodForAllNamespaces() as never));
      await this.watchServices(namespace);
    }
    await Promise.all(this.informers.map((i) => i.cache.start()));
    // The first configuration, even with no InferencePool yet: the server serves an empty
    // snapshot and the hooks leave Envoy Gateway's resources alone until pools appear.
    this.rebuild();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.rebuildTimer);
    await Promise.all(this.informers.map((i) => i.cache.stop()));
  }

  /** Services, for the endpoint pickers v1 pools name. Without the permission to list them, every
   * such reference is reported unresolved (its pool's status says so), and the rest works. */
  private async watchServices(namespace: string | undefined): Promise<void> {
    const list = () => namespace ? this.core.listNamespacedService({ namespace }) : this.core.listServiceForAllNamespaces();
    try {
      await list();
    } catch (err) {
      this.events.log?.(`not watching services${namespace ? ` in namespace ${namespace}` : ""} (endpoint picker references will not resolve): ${(err as { code?: number }).code ?? (err as Error).message}`);
      return;
    }
    this.add(makeInformer(this.kc, namespace ? `/api/v1/namespaces/${namespace}/services` : "/api/v1/services", list as never), undefined, "Service");
  }

  private add(cache: Cache, resource?: Resource, coreKind: CoreKind = "Pod"): void {
    const changed = (): void => this.scheduleRebuild();
    for (const verb of ["add", "update", "delete"] as const) cache.on(verb, changed);
    cache.on("error", (err) => this.stopped || this.events.log?.(`watch ${resource ? `${resource.plural}/${resource.version}` : `${coreKind.toLowerCase()}s`} failed, retrying: ${String(err)}`));
    this.informers.push({ cache, ...(resource ? { resource } : { coreKind }) });
  }

  private scheduleRebuild(): void {
    clearTimeout(this.rebuildTimer);
    this.rebuildTimer = setTimeout(() => this.rebuild(), this.debounceMs);
  }

  /** The watched objects, each once (the newest version's copy), Pods and Services with their kind
   * set; only the Services some pool names as its endpoint picker. */
  private objects(): KubernetesObject[] {
    const best = new Map<string, { rank: number; obj: KubernetesObject }>();
    const out: KubernetesObject[] = [];
    const services: KubernetesObject[] = [];
    for (const { resource, coreKind, cache } of this.informers) {
      for (const obj of cache.list()) {
        if (!resource) { (coreKind === "Service" ? services : out).push({ apiVersion: "v1", kind: coreKind, ...obj }); continue; }
        const withKind = { apiVersion: `${resource.group}/${resource.version}`, kind: resource.kind, ...obj };
        const key = `${resource.kind}/${obj.metadata?.namespace}/${obj.metadata?.name}`;
        const seen = best.get(key);
        if (!seen || seen.rank < resource.rank) best.set(key, { rank: resource.rank, obj: withKind });
      }
    }
    const custom = [...best.values()].map((b) => b.obj);
    const named = pickerServices(custom);
    return [...out, ...services.filter((s) => named.has(`${s.metadata?.namespace ?? "default"}/${s.metadata?.name}`)), ...custom];
  }

  private rebuild(): void {
    if (this.stopped) return;
    const objects = this.objects();
    // Our own status writes come back as update events: ignore changes routing cannot see.
    const input = JSON.stringify(objects.map(routingRelevant));
    if (input === this.lastInput) return;
    this.lastInput = input;
    // Invalid objects are left out by routingConfigFromObjects (and named in config.problems);
    // an exception here is a bug, and the previous configuration stays.
    let config: RoutingConfig;
    try {
      config = routingConfigFromObjects(objects, "kubernetes");
    } catch (err) {
      this.events.onRejected([`building the configuration failed: ${String(err)}`]);
      return;
    }
    this.events.onConfig(config);
    void this.reportStatus(objects, config);
  }

  /** Writes the status of every InferencePool whose attach-to names a Gateway, and of every
   * InferenceModel, InferenceObjective and InferenceModelRewrite on such a pool, when it changed. Other pools are not infergate's to report on.
   * A write the API server refuses is logged, affects only its object, and is tried again on the
   * next change. */
  private async reportStatus(objects: KubernetesObject[], config: RoutingConfig): Promise<void> {
    const claimed = new Set(objects.filter((o) => o.kind === "InferencePool" && claimedParent(o)).map((o) => `${o.metadata?.namespace ?? "default"}/${o.metadata?.name}`));
    for (const obj of objects.filter((o) => o.kind === "InferencePool" || POOL_REFERRER_PLURALS[o.kind ?? ""] !== undefined)) {
      await this.reportObjectStatus(obj, config, claimed)
        .catch((err) => this.events.log?.(`${obj.kind} ${obj.metadata?.namespace}/${obj.metadata?.name}: status update failed: ${String(err)}`));
    }
  }

  private async reportObjectStatus(obj: KubernetesObject, config: RoutingConfig, claimed: ReadonlySet<string>): Promise<void> {
    const version = (obj.apiVersion ?? "").split("/")[1]!;
    const namespace = obj.metadata?.namespace ?? "default";
    const name = obj.metadata?.name ?? "";
    const key = `${obj.kind}/${namespace}/${name}`;
    const ownProblems = config.problems.filter((p) => p.object?.kind === obj.kind && p.object?.namespace === namespace && p.object?.name === name);
    const own = ownProblems.map((p) => p.text);
    const previous = this.lastConditions.get(key) ?? [];
    if (obj.kind === "InferencePool") {
      const parent = claimedParent(obj);
      const conditions = parent && inferencePoolConditions(obj, version, own, config, previous, ownProblems.find((p) => p.reason)?.reason);
      await this.writePoolStatus(obj, key, version === "v1" ? "parents" : "parent", parent && conditions && { parentRef: parent, controllerName: CONTROLLER_NAME, conditions });
      return;
    }
    const poolName = (obj as { spec?: { poolRef?: { name?: string } } }).spec?.poolRef?.name;
    if (!claimed.has(`${namespace}/${poolName}`)) return;
    const status = obj.kind === "InferenceObjective" ? objectiveStatus(obj, own, config, previous)
      : obj.kind === "InferenceModelRewrite" ? rewriteStatus(obj, own, config, previous)
      : inferenceModelStatus(obj, own, config, previous);
    const text = JSON.stringify(status);
    if (this.lastStatus.get(key) === text) return;
    this.lastConditions.set(key, status.conditions);
    await this.custom.patchNamespacedCustomObjectStatus(
      { group: (obj.apiVersion ?? "").split("/")[0]!, version, namespace, plural: POOL_REFERRER_PLURALS[obj.kind!]!, name, body: { status } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    this.lastStatus.set(key, text);
    this.events.log?.(`${obj.kind} ${namespace}/${name} status: ${status.conditions.map((c) => `${c.type}=${c.status}`).join(", ")}`);
  }

  /**
   * Puts infergate's parent entry (`ours`; none when the pool is not infergate's) into the pool's
   * status list `field`, keeping every other controller's entry (pool-status.ts). The list is
   * written whole, so the write is conditional on the resourceVersion it was merged from: if
   * another controller wrote in between, the pool is read again and merged again.
   */
  private async writePoolStatus(pool: KubernetesObject, key: string, field: "parents" | "parent", ours: ParentStatus | undefined): Promise<void> {
    const text = JSON.stringify(ours ?? null);
    if (this.lastStatus.get(key) === text) return;
    const [group, version] = (pool.apiVersion ?? "").split("/") as [string, string];
    const namespace = pool.metadata?.namespace ?? "default";
    const name = pool.metadata?.name ?? "";
    const target = { group, version, namespace, plural: "inferencepools", name };
    let current = pool;
    for (let attempt = 1; ; attempt++) {
      const existing = (current as { status?: Record<string, unknown> }).status?.[field];
      const merged = mergeParents(Array.isArray(existing) ? existing : [], ours, namespace, this.writtenParents.get(key));
      if ((merged.claimedBy || merged.full) && !this.yielded.has(key)) {
        this.yielded.add(key);
        this.events.log?.(merged.claimedBy
          ? `InferencePool ${namespace}/${name}: controller ${merged.claimedBy} reports on Gateway ${ours!.parentRef.namespace}/${ours!.parentRef.name}; infergate leaves that status to it`
          : `InferencePool ${namespace}/${name}: other controllers' entries fill status.${field}; infergate's is not added`);
      }
      if (JSON.stringify(merged.parents) === JSON.stringify(Array.isArray(existing) ? existing : [])) break;
      try {
        await this.custom.patchNamespacedCustomObjectStatus(
          { ...target, body: { metadata: { resourceVersion: current.metadata?.resourceVersion }, status: { [field]: merged.parents } } },
          setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
        );
        const mine = merged.claimedBy || merged.full ? undefined : ours;
        this.events.log?.(`InferencePool ${namespace}/${name} status: ${mine ? mine.conditions.map((c) => `${c.type}=${c.status}`).join(", ") : "infergate's entry removed"}`);
        break;
      } catch (err) {
        if ((err as { code?: number }).code !== 409 || attempt >= 5) throw err;
        current = await this.custom.getNamespacedCustomObject(target) as KubernetesObject;
      }
    }
    this.lastStatus.set(key, text);
    this.lastConditions.set(key, ours?.conditions ?? []);
    this.writtenParents.set(key, ours ? [ours.parentRef] : []);
  }
}

/**
 * Whether a resource version can be watched: a first LIST answers. An API server that answers 429
 * (as it does while a new CRD's storage starts) or a 5xx is asked again for a few seconds; any
 * other failure (not served: 404, not permitted: 403) skips the version at once.
 */
async function servedVersion(list: () => Promise<unknown>, skip: (why: string) => void): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      await list();
      return true;
    } catch (err) {
      const code = (err as { code?: number }).code;
      const transient = typeof code === "number" && (code === 429 || code >= 500);
      if (!transient || attempt >= 6) {
        skip(String(code ?? (err as Error).message));
        return false;
      }
      await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
    }
  }
}

type CoreKind = "Pod" | "Service";

/** `<namespace>/<name>` of every Service a v1 InferencePool names in its endpointPickerRef. */
function pickerServices(objects: KubernetesObject[]): Set<string> {
  const out = new Set<string>();
  for (const o of objects) {
    const ref = (o as { spec?: { endpointPickerRef?: { name?: unknown } } }).spec?.endpointPickerRef;
    if (o.kind === "InferencePool" && typeof ref?.name === "string") out.add(`${o.metadata?.namespace ?? "default"}/${ref.name}`);
  }
  return out;
}

/** What routing depends on: a custom resource's metadata and spec, a Pod's labels and status. */
function routingRelevant(o: KubernetesObject): unknown {
  const { name, namespace, labels, annotations, generation, deletionTimestamp } = o.metadata ?? {};
  const rest = o as KubernetesObject & { spec?: unknown; status?: unknown };
  return [o.apiVersion, o.kind, name, namespace, labels, annotations, generation, deletionTimestamp, rest.spec, o.kind === "Pod" ? rest.status : undefined];
}

/** A condition whose lastTransitionTime only moves when its status changes. */
function conditionFor(obj: KubernetesObject, previous: Condition[]) {
  const generation = obj.metadata?.generation;
  const now = new Date().toISOString();
  return (type: string, ok: boolean, reason: string, message: string): Condition => {
    const status = ok ? "True" : "False";
    const before = previous.find((c) => c.type === type);
    const since = before && before.status === status ? before.lastTransitionTime : now;
    return { type, status, reason, message, lastTransitionTime: since, ...(generation !== undefined ? { observedGeneration: generation } : {}) };
  };
}

const SKIP_WORDS: Record<SkipReason, string> = { "no-ip": "without an IP", "invalid-ip": "with an invalid IP", "not-ready": "not ready" };

/** ResolvedRefs: whether the endpoint picker a v1 pool names resolves. A pool that names none (or
 * an x-k8s pool) resolves: infergate picks its endpoints itself. */
function resolvedRefs(picker: EndpointPicker | undefined, apiVersion: string): [boolean, string, string] {
  if (!picker) {
    return [true, "ResolvedRefs", apiVersion === "v1"
      ? "No endpointPickerRef: infergate picks endpoints itself"
      : "infergate picks endpoints itself; no endpoint picker reference is needed"];
  }
  const mode = picker.failureMode === "FailOpen" ? "FailOpen: infergate picks when it cannot be reached" : "FailClose: 503 when it cannot be reached";
  if (picker.unresolved) {
    return [false, "InvalidExtensionRef", `${picker.unresolved}; requests ${picker.failureMode === "FailOpen" ? "are routed by infergate (FailOpen)" : "get 503 (FailClose)"}`];
  }
  return [true, "ResolvedRefs", `Endpoint picker Service ${picker.service} port ${picker.port} picks; infergate validates, rewrites and sheds first (${mode})`];
}

/**
 * The conditions of infergate's entry in an InferencePool's status, for the Gateway its attach-to
 * names (also when that Gateway refused it: another namespace without a ReferenceGrant, reason
 * RefNotPermitted): Accepted (the pool is valid and this gateway routes to it) and ResolvedRefs
 * (the endpoint picker Service a v1 pool names exists and has the port; see resolvedRefs).
 * Selected Pods that are not endpoints are counted in Accepted's message.
 */
function inferencePoolConditions(pool: KubernetesObject, version: string, own: string[], config: RoutingConfig, previous: Condition[], reason?: string): Condition[] {
  const namespace = pool.metadata?.namespace ?? "default";
  const known = config.pools.find((p) => p.id === poolId(namespace, pool.metadata?.name ?? ""));
  const condition = conditionFor(pool, previous);
  const accepted = own.length === 0 && known !== undefined;
  const skipped = Object.entries(known?.skipped ?? {}).map(([reason, n]) => `${n} ${SKIP_WORDS[reason as SkipReason]}`);
  return [
    condition("Accepted", accepted, accepted ? "Accepted" : reason ?? "Invalid", accepted
      ? `Routed by infergate (${known!.endpoints.length} endpoints${skipped.length ? `; Pods skipped: ${skipped.join(", ")}` : ""})`
      : own.join("; ") || "not part of the current configuration"),
    condition("ResolvedRefs", ...resolvedRefs(known?.picker, version)),
  ];
}

/** An InferenceModel's status: Accepted, with the Inference Extension's reasons (Accepted,
 * ModelNameInUse) and Invalid for a model infergate cannot serve, naming the field. */
function inferenceModelStatus(model: KubernetesObject, own: string[], config: RoutingConfig, previous: Condition[]): { conditions: Condition[] } {
  const namespace = model.metadata?.namespace ?? "default";
  const served = config.models.some((m) => m.source === undefined && m.namespace === namespace && m.resourceName === model.metadata?.name);
  const condition = conditionFor(model, previous);
  const reason = served ? "Accepted" : own.some((p) => /is already served by/.test(p)) ? "ModelNameInUse" : "Invalid";
  return { conditions: [condition("Accepted", served, reason, served ? "Routed by infergate" : own.join("; ") || "not part of the current configuration")] };
}

/** An InferenceObjective's status: Accepted when its pool is served, else Invalid with the field. */
function objectiveStatus(objective: KubernetesObject, own: string[], config: RoutingConfig, previous: Condition[]): { conditions: Condition[] } {
  const namespace = objective.metadata?.namespace ?? "default";
  const served = config.objectives.some((o) => o.namespace === namespace && o.resourceName === objective.metadata?.name);
  const condition = conditionFor(objective, previous);
  return { conditions: [condition("Accepted", served, served ? "Accepted" : "Invalid", served ? "Routed by infergate" : own.join("; ") || "not part of the current configuration")] };
}

/**
 * An InferenceModelRewrite's status: Accepted while any of its matches is served. A match left out
 * (an InferenceModel, or an older rewrite, already declares the model) is named in the message;
 * if every match is left out for that reason, the reason is ModelNameInUse.
 */
function rewriteStatus(rewrite: KubernetesObject, own: string[], config: RoutingConfig, previous: Condition[]): { conditions: Condition[] } {
  const namespace = rewrite.metadata?.namespace ?? "default";
  const served = config.models.filter((m) => m.source === "InferenceModelRewrite" && m.namespace === namespace && m.resourceName === rewrite.metadata?.name);
  const condition = conditionFor(rewrite, previous);
  const inUse = own.length > 0 && own.every((p) => /is already (served|rewritten) by/.test(p));
  const reason = served.length > 0 ? "Accepted" : inUse ? "ModelNameInUse" : "Invalid";
  const message = served.length > 0
    ? `Routed by infergate: ${served.map((m) => m.modelName).join(", ")}${own.length > 0 ? `; left out: ${own.join("; ")}` : ""}`
    : own.join("; ") || "not part of the current configuration";
  return { conditions: [condition("Accepted", served.length > 0, reason, message)] };
}
