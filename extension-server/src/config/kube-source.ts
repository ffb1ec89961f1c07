// Kubernetes source of truth: informers (list + watch) on InferencePool (x-k8s v1alpha1 and
// v1alpha2, k8s.io v1), InferenceModel (x-k8s v1alpha1, v1alpha2), Pods, and the Services v1 pools
// name as their endpoint picker. Any change rebuilds the routing configuration through the same
// validation as the YAML file: an invalid object is left out on its own and everything else is
// served. Each InferencePool gets status conditions (Accepted, ResolvedRefs) as the Inference
// Extension defines them, with the Pods it skipped; each InferenceModel gets Accepted, naming the
// field when it is left out.
import {
  CoreV1Api, CustomObjectsApi, KubeConfig, makeInformer, PatchStrategy, setHeaderOptions,
  type Informer, type KubernetesObject, type ObjectCache,
} from "@kubernetes/client-node";
import { parse as parseYaml } from "yaml";
import type { EndpointPicker } from "./endpoint-picker.ts";
import { poolId, routingConfigFromObjects, type RoutingConfig, type SkipReason } from "./routing-config.ts";
import { ATTACH_TO_ANNOTATION, attachTo, GROUP_K8S, GROUP_X_K8S, type AttachTo } from "./resources.ts";
import type { ConfigSource, SourceEvents } from "./source.ts";

interface Resource { group: string; version: string; plural: string; kind: string; rank: number }

/** Newer versions win when a CRD serves the same object under several versions. */
const WATCHED: Resource[] = [
  { group: GROUP_K8S, version: "v1", plural: "inferencepools", kind: "InferencePool", rank: 3 },
  { group: GROUP_X_K8S, version: "v1alpha2", plural: "inferencepools", kind: "InferencePool", rank: 2 },
  { group: GROUP_X_K8S, version: "v1alpha1", plural: "inferencepools", kind: "InferencePool", rank: 1 },
  { group: GROUP_X_K8S, version: "v1alpha2", plural: "inferencemodels", kind: "InferenceModel", rank: 2 },
  { group: GROUP_X_K8S, version: "v1alpha1", plural: "inferencemodels", kind: "InferenceModel", rank: 1 },
];

const CONTROLLER_NAME = "infergate.io/extension-server";

type Cache = Informer<KubernetesObject> & ObjectCache<KubernetesObject>;

export class KubeSource implements ConfigSource {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly informers: Array<{ resource?: Resource; coreKind?: CoreKind; cache: Cache }> = [];
  private rebuildTimer?: NodeJS.Timeout;
  private stopped = false;
  private readonly lastStatus = new Map<string, string>();
  /** Conditions last written per pool, so lastTransitionTime only moves when a condition changes. */
  private readonly lastConditions = new Map<string, Condition[]>();
  private lastInput = "";
  private events: SourceEvents = { onConfig: () => undefined, onRejected: () => undefined };

  readonly description = "the cluster's resources";

  constructor(private readonly kc: KubeConfig, private readonly debounceMs = 20) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
  }

  /** Starts an informer for every served version (a version the cluster does not serve is skipped),
   * and builds the first configuration once they have listed. */
  async start(events: SourceEvents): Promise<void> {
    this.events = events;
    for (const r of WATCHED) {
      const list = () => this.custom.listClusterCustomObject({ group: r.group, version: r.version, plural: r.plural });
      try {
        await list();
      } catch (err) {
        this.events.log?.(`not watching ${r.plural}.${r.group}/${r.version}: ${(err as { code?: number }).code ?? (err as Error).message}`);
        continue;
      }
      this.add(makeInformer(this.kc, `/apis/${r.group}/${r.version}/${r.plural}`, list as never), r);
    }
    this.add(makeInformer(this.kc, "/api/v1/pods", () => this.core.listPodForAllNamespaces() as never));
    await this.watchServices();
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
  private async watchServices(): Promise<void> {
    const list = () => this.core.listServiceForAllNamespaces();
    try {
      await list();
    } catch (err) {
      this.events.log?.(`not watching services (endpoint picker references will not resolve): ${(err as { code?: number }).code ?? (err as Error).message}`);
      return;
    }
    this.add(makeInformer(this.kc, "/api/v1/services", list as never), undefined, "Service");
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
    void this.reportStatus(objects, config).catch((err) => this.events.log?.(`status update failed: ${String(err)}`));
  }

  /** Merge-patches the status of every InferencePool and InferenceModel whose status changed. */
  private async reportStatus(objects: KubernetesObject[], config: RoutingConfig): Promise<void> {
    for (const obj of objects.filter((o) => o.kind === "InferencePool" || o.kind === "InferenceModel")) {
      const [group, version] = (obj.apiVersion ?? "").split("/") as [string, string];
      const namespace = obj.metadata?.namespace ?? "default";
      const name = obj.metadata?.name ?? "";
      const key = `${obj.kind}/${namespace}/${name}`;
      const own = config.problems.filter((p) => p.object?.kind === obj.kind && p.object?.namespace === namespace && p.object?.name === name).map((p) => p.text);
      const previous = this.lastConditions.get(key) ?? [];
      const status = obj.kind === "InferencePool"
        ? inferencePoolStatus(obj, version, own, config, previous)
        : inferenceModelStatus(obj, own, config, previous);
      if (!status) {
        if (this.lastStatus.get(key) !== NO_PARENT) this.events.log?.(`${obj.kind} ${namespace}/${name}: no parent Gateway known (no ${ATTACH_TO_ANNOTATION} annotation), so no status is written`);
        this.lastStatus.set(key, NO_PARENT);
        continue;
      }
      const text = JSON.stringify(status);
      if (this.lastStatus.get(key) === text) continue;
      this.lastConditions.set(key, conditionsOf(status));
      await this.custom.patchNamespacedCustomObjectStatus(
        { group, version, namespace, plural: obj.kind === "InferencePool" ? "inferencepools" : "inferencemodels", name, body: { status } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
      this.lastStatus.set(key, text);
      this.events.log?.(`${obj.kind} ${namespace}/${name} status: ${conditionsOf(status).map((c) => `${c.type}=${c.status}`).join(", ")}`);
    }
  }
}

type CoreKind = "Pod" | "Service";

/** lastStatus marker of a pool whose status cannot be written (no parent Gateway). */
const NO_PARENT = "no parent";

/** The Gateway a pool's `attach-to` annotation names, also when the pool itself is left out. */
function parentGateway(pool: KubernetesObject, known: { attachTo?: AttachTo } | undefined): AttachTo | undefined {
  if (known?.attachTo) return known.attachTo;
  const text = pool.metadata?.annotations?.[ATTACH_TO_ANNOTATION];
  if (text === undefined) return undefined;
  try {
    const parsed = attachTo.safeParse(parseYaml(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

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

function conditionsOf(status: Record<string, unknown>): Condition[] {
  if (Array.isArray(status.conditions)) return status.conditions as Condition[];
  const parents = (status.parents ?? status.parent) as Array<{ conditions: Condition[] }>;
  return parents[0]?.conditions ?? [];
}

interface Condition { type: string; status: "True" | "False"; reason: string; message: string; observedGeneration?: number; lastTransitionTime: string }

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
 * The Inference Extension's InferencePool status: per parent Gateway, Accepted (the pool is valid
 * and this gateway routes to it) and ResolvedRefs (the endpoint picker Service a v1 pool names
 * exists and has the port; see resolvedRefs). The parent is the seed's `attach-to` Gateway.
 * v1 writes `status.parents`; the x-k8s versions write `status.parent`. Selected Pods that are not
 * endpoints are counted in Accepted's message.
 */
function inferencePoolStatus(pool: KubernetesObject, version: string, own: string[], config: RoutingConfig, previous: Condition[]): Record<string, unknown> | undefined {
  const namespace = pool.metadata?.namespace ?? "default";
  const known = config.pools.find((p) => p.id === poolId(namespace, pool.metadata?.name ?? ""));
  const condition = conditionFor(pool, previous);
  const accepted = own.length === 0 && known !== undefined;
  const skipped = Object.entries(known?.skipped ?? {}).map(([reason, n]) => `${n} ${SKIP_WORDS[reason as SkipReason]}`);
  const conditions = [
    condition("Accepted", accepted, accepted ? "Accepted" : "Invalid", accepted
      ? `Routed by infergate (${known!.endpoints.length} endpoints${skipped.length ? `; Pods skipped: ${skipped.join(", ")}` : ""})`
      : own.join("; ") || "not part of the current configuration"),
    condition("ResolvedRefs", ...resolvedRefs(known?.picker, version)),
  ];
  const parent = parentGateway(pool, known);
  // The v1 CRD requires a parent's name: without one, there is nothing valid to write.
  if (version === "v1" && !parent) return undefined;
  const parentRef = { group: "gateway.networking.k8s.io", kind: "Gateway", name: parent?.name ?? "", namespace: parent?.namespace ?? namespace };
  const entry = { parentRef, controllerName: CONTROLLER_NAME, conditions };
  return version === "v1" ? { parents: [entry] } : { parent: [entry] };
}

/** An InferenceModel's status: Accepted, with the Inference Extension's reasons (Accepted,
 * ModelNameInUse) and Invalid for a model infergate cannot serve, naming the field. */
function inferenceModelStatus(model: KubernetesObject, own: string[], config: RoutingConfig, previous: Condition[]): Record<string, unknown> {
  const namespace = model.metadata?.namespace ?? "default";
  const served = config.models.some((m) => m.namespace === namespace && m.resourceName === model.metadata?.name);
  const condition = conditionFor(model, previous);
  const reason = served ? "Accepted" : own.some((p) => /is already served by/.test(p)) ? "ModelNameInUse" : "Invalid";
  return { conditions: [condition("Accepted", served, reason, served ? "Routed by infergate" : own.join("; ") || "not part of the current configuration")] };
}
