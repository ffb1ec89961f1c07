// Schemas of the Kubernetes resources infergate reads, in every API version users have in hand:
// InferencePool (inference.networking.x-k8s.io v1alpha1/v1alpha2, inference.networking.k8s.io v1),
// InferenceModel (x-k8s v1alpha1/v1alpha2), core v1 Pod (the pool's members) and Gateway API
// ReferenceGrant (v1beta1, v1: consent to a cross-namespace attach-to). Only the fields routing
// needs are modelled; unknown fields are allowed (users paste whole manifests).
import { z } from "zod";
import { SNAPSHOT_NAME } from "../contract.ts";

export const GROUP_X_K8S = "inference.networking.x-k8s.io";
export const GROUP_K8S = "inference.networking.k8s.io";
export const ATTACH_TO_ANNOTATION = "inference.networking.x-k8s.io/attach-to";
export const GROUP_GATEWAY = "gateway.networking.k8s.io";

/** Kubernetes object names (DNS-1123 subdomain) and namespaces (DNS-1123 label), as the API
 * server enforces them; the YAML file gets the same rules. They become part of Envoy cluster
 * names and of the snapshot, which forbids whitespace. */
const objectName = z.string().max(253).regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, "must be a DNS-1123 subdomain (lower case letters, digits, '-' and '.')");
const namespaceName = z.string().max(63).regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a DNS-1123 label (lower case letters, digits and '-')");
/** Model names go into the snapshot as they are. */
const modelName = z.string().regex(SNAPSHOT_NAME, "must be 1-253 characters of letters, digits and . _ : / @ + - (no whitespace, ',' or '=')");

const metadata = z.object({
  name: objectName,
  namespace: namespaceName.optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  deletionTimestamp: z.string().optional(),
  creationTimestamp: z.string().optional(),
});

const port = z.number().int().min(1).max(65535);

export const inferencePoolV1alpha = z.object({
  apiVersion: z.enum([`${GROUP_X_K8S}/v1alpha1`, `${GROUP_X_K8S}/v1alpha2`]),
  kind: z.literal("InferencePool"),
  metadata,
  spec: z.object({
    selector: z.record(z.string(), z.string()).refine((s) => Object.keys(s).length > 0, "must select at least one label"),
    targetPortNumber: port,
  }).passthrough(),
}).passthrough();

export const inferencePoolV1 = z.object({
  apiVersion: z.literal(`${GROUP_K8S}/v1`),
  kind: z.literal("InferencePool"),
  metadata,
  spec: z.object({
    selector: z.object({ matchLabels: z.record(z.string(), z.string()) }).passthrough()
      .refine((s) => Object.keys(s.matchLabels).length > 0, "matchLabels must have at least one label"),
    targetPorts: z.array(z.object({ number: port })).min(1).max(8),
  }).passthrough(),
}).passthrough();

export const inferenceModel = z.object({
  apiVersion: z.enum([`${GROUP_X_K8S}/v1alpha1`, `${GROUP_X_K8S}/v1alpha2`]),
  kind: z.literal("InferenceModel"),
  metadata,
  spec: z.object({
    modelName,
    criticality: z.enum(["Critical", "Standard", "Sheddable"]).optional(),
    poolRef: z.object({ name: objectName, group: z.string().optional(), kind: z.string().optional() }).passthrough(),
    targetModels: z.array(z.object({ name: modelName, weight: z.number().int().min(0).max(1_000_000).optional() })).max(10).optional(),
  }).passthrough(),
}).passthrough();

/** Only what selecting members needs: a Pod without an IP yet (Pending) is valid here, and is
 * skipped (and counted) by the pools that select it. */
export const pod = z.object({
  apiVersion: z.literal("v1"),
  kind: z.literal("Pod"),
  metadata: z.object({
    name: z.string().min(1),
    namespace: z.string().min(1).optional(),
    labels: z.record(z.string(), z.string()).optional(),
    deletionTimestamp: z.string().optional(),
  }).passthrough(),
  status: z.object({
    podIP: z.string().optional(),
    phase: z.string().optional(),
    conditions: z.array(z.object({ type: z.string(), status: z.string() }).passthrough()).optional(),
  }).passthrough().optional(),
}).passthrough();

/** A Gateway API ReferenceGrant: objects of the `from` kinds in the `from` namespaces may refer
 * to the `to` objects in the grant's own namespace (every object of the kind when `name` is unset). */
export const referenceGrant = z.object({
  apiVersion: z.enum([`${GROUP_GATEWAY}/v1beta1`, `${GROUP_GATEWAY}/v1`]),
  kind: z.literal("ReferenceGrant"),
  metadata,
  spec: z.object({
    from: z.array(z.object({ group: z.string(), kind: z.string(), namespace: z.string() }).passthrough()).min(1).max(16),
    to: z.array(z.object({ group: z.string(), kind: z.string(), name: z.string().optional() }).passthrough()).min(1).max(16),
  }).passthrough(),
}).passthrough();

/** The `attach-to` annotation value, as in the seed: a YAML mapping `name: <gateway>` / `port: <n>`. */
export const attachTo = z.object({
  name: z.string().min(1),
  namespace: z.string().min(1).optional(),
  port: port.optional(),
});

export type InferenceModel = z.infer<typeof inferenceModel>;
export type Pod = z.infer<typeof pod>;
export type AttachTo = z.infer<typeof attachTo>;
export type ReferenceGrant = z.infer<typeof referenceGrant>;
