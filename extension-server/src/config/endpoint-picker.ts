// A v1 InferencePool's `endpointPickerRef`, resolved to where Envoy reaches the picker: the named
// Service's cluster IP and port. The same rules apply to a Service from the YAML file (standalone)
// and one from the Kubernetes API. A reference that does not resolve keeps the pool: its requests
// then follow the failure mode (FailOpen: infergate picks; FailClose: 503), and its status says
// ResolvedRefs=False, InvalidExtensionRef, with the reason.
import { isIP } from "node:net";
import type { EndpointPickerRef, Service } from "./resources.ts";

export type FailureMode = "FailOpen" | "FailClose";

export interface EndpointPicker {
  /** The Service the reference names, `<namespace>/<name>` (always the pool's namespace). */
  service: string;
  /** The Service port the reference names. */
  port: number | undefined;
  /** What the gateway does when the picker cannot be reached (the API's default: FailClose). */
  failureMode: FailureMode;
  /** Where Envoy connects: the Service's cluster IP and the port; `tls` unless the port's
   * appProtocol says plaintext HTTP/2. Undefined when the reference does not resolve. */
  address?: { ip: string; port: number; tls: boolean } | undefined;
  /** Why the reference does not resolve. */
  unresolved?: string | undefined;
}

/** Service port appProtocols that mean plaintext HTTP/2 (h2c); any other value, or none, means TLS,
 * which is the endpoint picker's default (its certificate is not verified, as in the Inference
 * Extension's reference configuration). */
const PLAINTEXT_APP_PROTOCOLS = new Set(["kubernetes.io/h2c", "h2c"]);

export function serviceKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** Why a Service cannot carry the picker's traffic on `port`, or its address. */
function serviceAddress(service: Service, port: number): { ip: string; port: number; tls: boolean } | string {
  const name = serviceKey(service.metadata.namespace ?? "default", service.metadata.name);
  const ip = service.spec?.clusterIP;
  if (!ip || isIP(ip) === 0) return `Service ${name} has no cluster IP (a headless or ExternalName Service cannot be used)`;
  const servicePort = service.spec?.ports?.find((p) => p.port === port);
  if (!servicePort) return `Service ${name} has no port ${port}`;
  if (servicePort.protocol !== undefined && servicePort.protocol !== "TCP") return `Service ${name} port ${port} is ${servicePort.protocol}, not TCP`;
  return { ip, port, tls: !PLAINTEXT_APP_PROTOCOLS.has(servicePort.appProtocol ?? "") };
}

/** Resolves a pool's reference against the Services known, keyed by serviceKey(). */
export function resolveEndpointPicker(ref: EndpointPickerRef, namespace: string, services: ReadonlyMap<string, Service>): EndpointPicker {
  const key = serviceKey(namespace, ref.name);
  const port = ref.port?.number;
  const picker: EndpointPicker = { service: key, port, failureMode: ref.failureMode ?? "FailClose" };
  const unresolved = (why: string): EndpointPicker => ({ ...picker, unresolved: why });
  if ((ref.group ?? "") !== "" || (ref.kind ?? "Service") !== "Service") {
    return unresolved(`endpointPickerRef names ${ref.kind ?? "Service"}${ref.group ? `.${ref.group}` : ""} ${ref.name}; only a core Service is supported`);
  }
  if (port === undefined) return unresolved("endpointPickerRef.port.number is required for a Service");
  const service = services.get(key);
  if (!service) return unresolved(`Service ${key} not found`);
  const address = serviceAddress(service, port);
  return typeof address === "string" ? unresolved(address) : { ...picker, address };
}
