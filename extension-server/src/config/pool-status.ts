// Which InferencePool status infergate writes, and how it shares the status with other controllers.
//
// A pool is infergate's to report on when its `attach-to` annotation names a Gateway: infergate
// serves that Gateway's listener. A pool without one may be served by another Gateway
// implementation, so infergate writes nothing to it.
//
// The status lists one entry per parent Gateway and controller (`status.parents` in v1,
// `status.parent` in the x-k8s versions). infergate writes only its own entry, keyed by parentRef
// and controllerName, and keeps every other entry as it is:
//   - an entry with another controllerName is never changed or removed;
//   - if another controller already reports on the Gateway infergate would report on, that
//     Gateway is theirs, and infergate adds nothing (`claimedBy`);
//   - infergate's own entries for other Gateways (the annotation moved) are removed. An entry
//     without controllerName (x-k8s CRDs may prune the field) is taken as infergate's only when
//     infergate wrote that parent before;
//   - the list holds at most 32 entries (the v1 CRD's bound): when others fill it, infergate adds
//     none (`full`).
import { parseAllDocuments } from "yaml";
import { ATTACH_TO_ANNOTATION, GROUP_GATEWAY } from "./resources.ts";

export const CONTROLLER_NAME = "infergate.io/extension-server";
/** The v1 CRD's maxItems for status.parents. */
const MAX_PARENTS = 32;

export interface ParentRef { group: string; kind: string; name: string; namespace: string }

export interface Condition { type: string; status: "True" | "False"; reason: string; message: string; observedGeneration?: number; lastTransitionTime: string }

export interface ParentStatus { parentRef: ParentRef; controllerName?: string; conditions: Condition[] }

interface PoolObject { metadata?: { namespace?: string; annotations?: Record<string, string> } }

/** The Gateway a pool's attach-to annotation names (whether or not it may attach there), or
 * undefined when the pool has no usable annotation. */
export function claimedParent(pool: PoolObject): ParentRef | undefined {
  const annotation = pool.metadata?.annotations?.[ATTACH_TO_ANNOTATION];
  if (annotation === undefined) return undefined;
  const docs = parseAllDocuments(annotation);
  const value = Array.isArray(docs) && docs.length === 1 && docs[0]!.errors.length === 0 ? docs[0]!.toJS() as unknown : undefined;
  if (typeof value !== "object" || value === null) return undefined;
  const { name, namespace } = value as { name?: unknown; namespace?: unknown };
  if (typeof name !== "string" || name === "") return undefined;
  return { group: GROUP_GATEWAY, kind: "Gateway", name, namespace: typeof namespace === "string" && namespace !== "" ? namespace : pool.metadata?.namespace ?? "default" };
}

/** A parentRef with the API's defaults filled in (group gateway.networking.k8s.io, kind Gateway,
 * the pool's namespace), as a comparable key. */
function parentKey(ref: Partial<ParentRef> | undefined, poolNamespace: string): string {
  return JSON.stringify([ref?.group || GROUP_GATEWAY, ref?.kind || "Gateway", ref?.namespace || poolNamespace, ref?.name ?? ""]);
}

export interface MergedParents {
  parents: unknown[];
  /** Another controller reports on the Gateway infergate would have reported on. */
  claimedBy?: string;
  /** Other controllers' entries fill the list: infergate's could not be added. */
  full?: boolean;
}

/**
 * The status entries to write: `existing` with infergate's own entry replaced by `ours` (or
 * removed when `ours` is undefined), every other controller's entry kept as it is. `writtenBefore`
 * are the parents infergate wrote for this pool (for entries whose controllerName was pruned).
 */
export function mergeParents(existing: unknown[], ours: ParentStatus | undefined, poolNamespace: string, writtenBefore: readonly ParentRef[] = []): MergedParents {
  const entries = existing.filter((e): e is Partial<ParentStatus> => typeof e === "object" && e !== null);
  const remembered = new Set(writtenBefore.map((r) => parentKey(r, poolNamespace)));
  const oursKey = ours && parentKey(ours.parentRef, poolNamespace);
  const isOurs = (e: Partial<ParentStatus>): boolean => e.controllerName === CONTROLLER_NAME
    || (!e.controllerName && (remembered.has(parentKey(e.parentRef, poolNamespace)) || parentKey(e.parentRef, poolNamespace) === oursKey));
  const foreign = oursKey === undefined ? undefined
    : entries.find((e) => !isOurs(e) && e.controllerName && parentKey(e.parentRef, poolNamespace) === oursKey);
  const kept = entries.filter((e) => !isOurs(e));
  if (foreign) return { parents: kept, claimedBy: foreign.controllerName! };
  if (ours && kept.length >= MAX_PARENTS) return { parents: kept, full: true };
  return { parents: ours ? [...kept, ours] : kept };
}
