// A small state-of-the-world xDS server over gRPC. Each resource type (ECDS extension configs,
// EDS load assignments) is a versioned set of named resources; every open stream is sent the
// current version when it subscribes and again whenever the set changes. ACKs and NACKs are
// tracked per stream so a rejected push is visible (and never retried in a loop), with the time
// Envoy took to answer.
// Only resources in the set are ever sent: a name nobody published gets nothing, and a request
// may list only so many of those (the rest are ignored; both are reported). So no request can
// make a reply, or every later push, grow with the names it lists.
import * as grpc from "@grpc/grpc-js";
import type protobuf from "protobufjs";
import { protoRoot, typeUrl } from "./protos.ts";

export const TYPE_EXTENSION_CONFIG = typeUrl("envoy.config.core.v3.TypedExtensionConfig");
export const TYPE_LOAD_ASSIGNMENT = typeUrl("envoy.config.endpoint.v3.ClusterLoadAssignment");

/** A resource already encoded as the Any that goes into DiscoveryResponse.resources. */
export interface EncodedResource { name: string; any: { type_url: string; value: Uint8Array } }

interface DiscoveryRequest {
  version_info?: string;
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string } | null;
  node?: { id?: string };
}

/** Why requested names are not answered: nothing by that name is published, or the request
 * listed more names than the bound for its type. */
export type IgnoredReason = "unknown" | "over-limit";

export interface XdsEvents {
  /** Envoy accepted (`error` undefined) or rejected a version, `seconds` after it was sent. */
  onAck?(typeUrl: string, version: string, nodeId: string, error: string | undefined, seconds: number): void;
  /** A request named resources that are not answered (reported when the subscription changes). */
  onIgnoredNames?(typeUrl: string, nodeId: string, reason: IgnoredReason, names: string[]): void;
}

/** Names one request may list that nothing is published under, per type (they are remembered in
 * case they are published later); the rest are ignored. Names that are published are always
 * answered. An Envoy asks for the filter once plus once per EnvoyExtensionPolicy Wasm filter it
 * runs (ECDS), and for each pool, HTTPRoute rule and mirror cluster its routes reach (EDS). */
export const DEFAULT_MAX_NAMES: Readonly<Record<string, number>> = {
  [TYPE_EXTENSION_CONFIG]: 64,
  [TYPE_LOAD_ASSIGNMENT]: 1024,
};

export interface XdsServerOptions {
  maxNames?: Readonly<Record<string, number>> | undefined;
  /** Other gRPC services served on the same port, with the same credentials (the load channel). */
  services?: Array<{ definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation }> | undefined;
}

/** An open stream: which Envoy (node id), which type, and whether its last answer was a NACK. */
export interface XdsStreamState { typeUrl: string; nodeId: string; rejected: boolean }

class ResourceSet {
  version = 0;
  resources = new Map<string, EncodedResource>();
}

class Subscription {
  /** Whether the stream has sent its first request: until then it has named nothing, and a push
   * must not answer it (it would be answered as a wildcard subscription). */
  requested = false;
  names: string[] = [];
  sentVersion = -1;
  nonce = 0;
  /** Envoy sends its node only on a stream's first request (set_node_on_first_message_only). */
  nodeId = "";
  /** performance.now() when the latest response was sent. */
  sentAt = 0;
  /** Envoy NACKed the latest response it answered (it runs an older version). */
  rejected = false;
  constructor(readonly typeUrl: string) {}
}

const SERVICES: Array<{ service: string; method: string; typeUrl: string }> = [
  { service: "envoy.service.extension.v3.ExtensionConfigDiscoveryService", method: "StreamExtensionConfigs", typeUrl: TYPE_EXTENSION_CONFIG },
  { service: "envoy.service.endpoint.v3.EndpointDiscoveryService", method: "StreamEndpoints", typeUrl: TYPE_LOAD_ASSIGNMENT },
];

export class XdsServer {
  private readonly sets = new Map<string, ResourceSet>();
  private readonly streams = new Set<{ sub: Subscription; send: () => void }>();
  private readonly server = new grpc.Server({ "grpc.keepalive_permit_without_calls": 1 });
  private readonly requestType: protobuf.Type;
  private readonly responseType: protobuf.Type;
  private boundPort = 0;

  private readonly maxNames: Readonly<Record<string, number>>;

  constructor(private readonly events: XdsEvents = {}, opts: XdsServerOptions = {}) {
    this.maxNames = { ...DEFAULT_MAX_NAMES, ...opts.maxNames };
    const root = protoRoot();
    this.requestType = root.lookupType("envoy.service.discovery.v3.DiscoveryRequest");
    this.responseType = root.lookupType("envoy.service.discovery.v3.DiscoveryResponse");
    for (const { service, method, typeUrl } of SERVICES) {
      this.sets.set(typeUrl, new ResourceSet());
      this.server.addService(this.definition(service, method), {
        [method]: (call: grpc.ServerDuplexStream<DiscoveryRequest, object>) => this.handleStream(call, typeUrl),
      });
    }
    for (const { definition, implementation } of opts.services ?? []) this.server.addService(definition, implementation);
  }

  get port(): number { return this.boundPort; }

  /** Listens in plaintext, or with `credentials` (mutual TLS: tls.ts). */
  async listen(host: string, port: number, credentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
    this.boundPort = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`${host}:${port}`, credentials, (err, bound) => (err ? reject(err) : resolve(bound))));
    return this.boundPort;
  }

  async close(): Promise<void> {
    this.server.forceShutdown();
  }

  /** Replaces every resource of a type; streams subscribed to it are pushed the new version. */
  setResources(type: string, resources: EncodedResource[]): number {
    const set = this.sets.get(type);
    if (!set) throw new Error(`unsupported xDS type ${type}`);
    set.resources = new Map(resources.map((r) => [r.name, r]));
    set.version++;
    for (const stream of this.streams) if (stream.sub.typeUrl === type) stream.send();
    return set.version;
  }

  version(type: string): number {
    return this.sets.get(type)?.version ?? 0;
  }

  /** Every open stream. */
  streamStates(): XdsStreamState[] {
    return [...this.streams].map(({ sub }) => ({ typeUrl: sub.typeUrl, nodeId: sub.nodeId, rejected: sub.rejected }));
  }

  private definition(service: string, method: string): grpc.ServiceDefinition {
    const req = this.requestType;
    const res = this.responseType;
    return {
      [method]: {
        path: `/${service}/${method}`,
        requestStream: true,
        responseStream: true,
        requestSerialize: (m: object) => Buffer.from(req.encode(req.fromObject(m)).finish()),
        requestDeserialize: (b: Buffer) => req.toObject(req.decode(b), { defaults: true }) as DiscoveryRequest,
        responseSerialize: (m: object) => Buffer.from(res.encode(res.fromObject(m)).finish()),
        responseDeserialize: (b: Buffer) => res.toObject(res.decode(b)),
      },
    } as grpc.ServiceDefinition;
  }

  private handleStream(call: grpc.ServerDuplexStream<DiscoveryRequest, object>, type: string): void {
    const sub = new Subscription(type);
    const set = this.sets.get(type)!;
    const send = (): void => {
      if (!sub.requested || (sub.sentVersion === set.version && sub.nonce > 0)) return;
      sub.sentVersion = set.version;
      sub.nonce++;
      sub.sentAt = performance.now();
      const wanted = sub.names.length === 0 ? [...set.resources.values()] : sub.names.flatMap((n) => set.resources.get(n) ?? []);
      call.write({
        version_info: String(set.version),
        type_url: type,
        nonce: String(sub.nonce),
        resources: wanted.map((r) => r.any),
      });
    };
    const entry = { sub, send };
    this.streams.add(entry);
    call.on("data", (request: DiscoveryRequest) => this.onRequest(sub, request, send));
    const drop = (): void => { this.streams.delete(entry); };
    call.on("end", () => { drop(); call.end(); });
    call.on("error", drop);
    call.on("close", drop);
  }

  private onRequest(sub: Subscription, request: DiscoveryRequest, send: () => void): void {
    const nonce = request.response_nonce ?? "";
    if (nonce !== "" && nonce !== String(sub.nonce)) return; // answers a response superseded since
    sub.nodeId ||= request.node?.id ?? "";
    sub.requested = true;
    if (nonce !== "") {
      const error = request.error_detail?.message || undefined;
      sub.rejected = error !== undefined;
      this.events.onAck?.(sub.typeUrl, request.version_info ?? "", sub.nodeId, error, (performance.now() - sub.sentAt) / 1000);
    }
    // Names served now are always kept (the reply is bounded by what is published); of the others,
    // up to the bound are remembered, in case they are published later (a pool that appears).
    const resources = this.sets.get(sub.typeUrl)!.resources;
    const requested = [...new Set(request.resource_names ?? [])].sort();
    const unserved = requested.filter((n) => !resources.has(n));
    const max = this.maxNames[sub.typeUrl] ?? Infinity;
    const remembered = new Set(unserved.slice(0, max));
    const names = requested.filter((n) => resources.has(n) || remembered.has(n));
    const namesChanged = names.join("\n") !== sub.names.join("\n");
    sub.names = names;
    // First request, or a change of subscription: (re)send. An ACK/NACK needs no answer.
    if (nonce === "" || namesChanged) {
      if (remembered.size > 0) this.events.onIgnoredNames?.(sub.typeUrl, sub.nodeId, "unknown", [...remembered]);
      if (unserved.length > max) this.events.onIgnoredNames?.(sub.typeUrl, sub.nodeId, "over-limit", unserved.slice(max));
      sub.sentVersion = -1;
      send();
    }
  }
}
