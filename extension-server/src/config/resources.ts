// Schemas of the Kubernetes resources infergate reads, in every API version users have in hand:
// InferencePool (inference.networking.x-k8s.io v1alpha1/v1alpha2, inference.networking.k8s.io v1),
// InferenceModel (x-k8s v1alpha1/v1alpha2), core v1 Pod (the pool's members) and core v1 Service
// (where a v1 pool's endpoint picker listens). Only the fields routing needs are modelled; unknown
// fields are allowed (users paste whole manifests).
import { z } from "zod";
import { SNAPSHOT_NAME } from "../contract.ts";

export const GROUP_X_K8S = "inference.networking.x-k8s.io";
export const GROUP_K8S = "inference.networking.k8s.io";
export const ATTACH_TO_ANNOTATION = "inference.networking.x-k8s.io/attach-to";

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

/** v1 `spec.endpointPickerRef` (optional since v1.6 of the API). Only its shape is checked here;
 * whether the Service it names exists is decided later (config/endpoint-picker.ts), and a reference
 * that does not resolve leaves the pool in place with ResolvedRefs=False. */
export const endpointPickerRef = z.object({
  group: z.string().optional(),
  kind: z.string().optional(),
  name: objectName,
  port: z.object({ number: port }).passthrough().optional(),
  failureMode: z.enum(["FailOpen", "FailClose"]).optional(),
}).passthrough();

export const inferencePoolV1 = z.object({
  apiVersion: z.literal(`${GROUP_K8S}/v1`),
  kind: z.literal("InferencePool"),
  metadata,
  spec: z.object({
    selector: z.object({ matchLabels: z.record(z.string(), z.string()) }).passthrough()
      .refine((s) => Object.keys(s.matchLabels).length > 0, "matchLabels must have at least one label"),
    targetPorts: z.array(z.object({ number: port })).min(1).max(8),
    endpointPickerRef: endpointPickerRef.optional(),
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

/** A core v1 Service, as far as reaching an endpoint picker needs: its cluster IP and ports. In
 * standalone mode the YAML file carries it; in Kubernetes it comes from the API. */
export const service = z.object({
  apiVersion: z.literal("v1"),
  kind: z.literal("Service"),
  metadata,
  spec: z.object({
    clusterIP: z.string().optional(),
    ports: z.array(z.object({ port, name: z.string().optional(), protocol: z.string().optional(), appProtocol: z.string().optional() }).passthrough()).optional(),
  }).passthrough().optional(),
}).passthrough();

/** The `attach-to` annotation value, as in the seed: a YAML mapping `name: <gateway>` / `port: <n>`. */
export const attachTo = z.object({
  name: z.string().min(1),
  namespace: z.string().min(1).optional(),
  port: port.optional(),
});

export type InferenceModel = z.infer<typeof inferenceModel>;
export type EndpointPickerRef = z.infer<typeof endpointPickerRef>;
export type Service = z.infer<typeof service>;
export type Pod = z.infer<typeof pod>;
export type AttachTo = z.infer<typeof attachTo>;
