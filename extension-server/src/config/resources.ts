// Schemas of the Kubernetes resources infergate reads, in every API version users have in hand:
// InferencePool (inference.networking.x-k8s.io v1alpha1/v1alpha2, inference.networking.k8s.io v1),
// InferenceModel (x-k8s v1alpha1/v1alpha2), InferenceObjective and InferenceModelRewrite (x-k8s
// v1alpha2), core v1 Pod (the pool's members), core v1 Service (where a v1 pool's endpoint picker
// listens), and the Gateway API's HTTPRoute (v1, v1beta1) and ReferenceGrant (v1beta1, v1: consent
// to a cross-namespace attach-to). Only the fields routing needs are modelled; unknown fields are
// allowed (users paste whole manifests).
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
export type EndpointPickerRef = z.infer<typeof endpointPickerRef>;
export type Service = z.infer<typeof service>;
export type Pod = z.infer<typeof pod>;
export type AttachTo = z.infer<typeof attachTo>;

/** A reference to the InferencePool in the referrer's own namespace (InferenceObjective and
 * InferenceModelRewrite `poolRef`). */
const poolRef = z.object({
  name: objectName,
  group: z.enum([GROUP_K8S, GROUP_X_K8S]).optional(),
  kind: z.literal("InferencePool").optional(),
}).passthrough();

/** The Inference Extension's priority is an int32; infergate keeps it within ±1,000,000 so it
 * goes into the snapshot as a plain integer. Negative means sheddable. */
export const MAX_PRIORITY = 1_000_000;

/** InferenceObjective (x-k8s v1alpha2): a request that names it in `x-gateway-inference-objective`
 * gets its priority in the pool it references. */
export const inferenceObjective = z.object({
  apiVersion: z.literal(`${GROUP_X_K8S}/v1alpha2`),
  kind: z.literal("InferenceObjective"),
  metadata,
  spec: z.object({
    priority: z.number().int().min(-MAX_PRIORITY).max(MAX_PRIORITY).optional(),
    poolRef,
  }).passthrough(),
}).passthrough();

const rewriteTarget = z.object({
  modelRewrite: modelName,
  weight: z.number().int().min(1).max(1_000_000).optional(),
}).passthrough();

/** InferenceModelRewrite (x-k8s v1alpha2): rules that rewrite a requested model, by exact match
 * (or, with no matches, any model), to weighted target models. */
export const inferenceModelRewrite = z.object({
  apiVersion: z.literal(`${GROUP_X_K8S}/v1alpha2`),
  kind: z.literal("InferenceModelRewrite"),
  metadata,
  spec: z.object({
    poolRef,
    rules: z.array(z.object({
      matches: z.array(z.object({
        model: z.object({ type: z.literal("Exact").optional(), value: modelName }).passthrough(),
      }).passthrough()).max(64).optional(),
      targets: z.array(rewriteTarget).min(1).max(10),
    }).passthrough()).min(1).max(64),
  }).passthrough(),
}).passthrough();

/** A backendRef (HTTPRoute rule, or a RequestMirror filter's). Kind defaults to Service. */
const backendObjectRef = z.object({
  group: z.string().optional(),
  kind: z.string().optional(),
  name: objectName,
  namespace: namespaceName.optional(),
  port: port.optional(),
}).passthrough();

const stringMatch = z.object({ type: z.enum(["Exact", "RegularExpression"]).optional(), name: z.string().min(1).max(256), value: z.string().max(4096) }).passthrough();

/** HTTPRoute (gateway.networking.k8s.io v1/v1beta1), the parts infergate reads: matches, filters
 * (RequestMirror) and backendRefs. Other filter types are allowed (Envoy Gateway applies them);
 * standalone mode only accepts what it can serve (routing-config.ts checks). */
export const httpRoute = z.object({
  apiVersion: z.enum([`${GROUP_GATEWAY}/v1`, `${GROUP_GATEWAY}/v1beta1`]),
  kind: z.literal("HTTPRoute"),
  metadata,
  spec: z.object({
    parentRefs: z.array(z.object({ name: objectName, namespace: namespaceName.optional(), sectionName: z.string().optional(), port: port.optional() }).passthrough()).max(32).optional(),
    hostnames: z.array(z.string()).max(16).optional(),
    rules: z.array(z.object({
      matches: z.array(z.object({
        path: z.object({ type: z.enum(["Exact", "PathPrefix", "RegularExpression"]).optional(), value: z.string().min(1).max(1024).optional() }).passthrough().optional(),
        headers: z.array(stringMatch).max(16).optional(),
        queryParams: z.array(stringMatch).max(16).optional(),
        method: z.enum(["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]).optional(),
      }).passthrough()).max(64).optional(),
      filters: z.array(z.object({
        type: z.string(),
        requestMirror: z.object({
          backendRef: backendObjectRef,
          percent: z.number().int().min(0).max(100).optional(),
          fraction: z.object({ numerator: z.number().int().min(0), denominator: z.number().int().min(1).optional() }).passthrough()
            .refine((f) => f.numerator <= (f.denominator ?? 100), "numerator must not exceed denominator").optional(),
        }).passthrough()
          .refine((m) => m.percent === undefined || m.fraction === undefined, "set percent or fraction, not both").optional(),
      }).passthrough()).max(16).optional(),
      backendRefs: z.array(backendObjectRef.extend({ weight: z.number().int().min(0).max(1_000_000).optional() })).max(16).optional(),
    }).passthrough()).max(16).optional(),
  }).passthrough(),
}).passthrough();

export type InferenceObjective = z.infer<typeof inferenceObjective>;
export type InferenceModelRewrite = z.infer<typeof inferenceModelRewrite>;
export type HttpRoute = z.infer<typeof httpRoute>;
export type ReferenceGrant = z.infer<typeof referenceGrant>;
