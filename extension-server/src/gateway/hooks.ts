// Envoy Gateway extension hooks (envoygateway.extension.EnvoyGatewayExtension). Envoy Gateway
// calls them while it translates Gateway API resources into xDS. We use them to:
//   - PostHTTPListenerModify: put the infergate filter, fed over ECDS by this server, before the
//     router of every listener an InferencePool's `attach-to` annotation names, and upgrade a Wasm
//     filter an EnvoyExtensionPolicy attached (root_id "infergate") to the same ECDS feed; and on
//     every HTTP listener, remove client-sent destination and mirror headers before any filter
//     runs (an HTTPRoute on a listener without the filter can reach a pool cluster too);
//   - PostClusterModify: turn the cluster built for an InferencePool backendRef into an EDS cluster
//     of the pool's endpoints (from this server) with the override_host policy the filter steers;
//   - PostTranslateModify: add the cluster Envoy downloads the filter module through (when the
//     module is served by this server), turn the cluster of a RequestMirror to an InferencePool into
//     an EDS cluster of the mirror pool steered by the filter's mirror header (Envoy Gateway builds
//     mirror clusters without calling the Cluster hook, and without the pool), and the same
//     listener edit when all listeners are sent;
//   - PostRouteModify, and the listener and translation hooks: wire a v1 pool's endpoint picker
//     over ext_proc (gateway/endpoint-picker-hooks.ts).
// Envoy reaches this server's xDS through its Google gRPC client (see XdsTransport).
// Resources are edited at the wire level (xds/wire.ts): every field we do not touch, including
// fields newer than our protos, goes back to Envoy Gateway byte for byte. What we add is built by
// envoy/resources.ts, like everything infergate gives Envoy.
// A hook that fails (a resource it cannot decode, no configuration yet) answers gRPC INTERNAL and
// logs why. Envoy Gateway runs its extension with `failOpen: false`, so it then pushes nothing new
// and every Envoy keeps its last good configuration; a half-edited resource is never sent.
import * as grpc from "@grpc/grpc-js";
import { poolId, type PoolConfig, type RoutingConfig } from "../config/routing-config.ts";
import { FILTER_NAME } from "../contract.ts";
import {
  ecdsHttpFilter, edsClusterConfig, filterConfigDiscovery, hostCluster, mirrorCluster, overrideHostPolicy, poolCircuitBreakers, poolsEdsName, routeEdsName,
  STRIP_DESTINATION_NAME, stripClientDestination, WASM_TYPE_URL, type XdsClientTls, type XdsTransport,
} from "../envoy/resources.ts";
import { editPickerRoute, insertPickerFilter, missingPickerClusters, poolOf } from "./endpoint-picker-hooks.ts";
import { encodeJson, type Json } from "../xds/encode.ts";
import { fieldNumbers, protoRoot } from "../xds/protos.ts";
import { WIRE_LENGTH_DELIMITED, WireMessage, type WireField } from "../xds/wire.ts";

export const SERVICE = "envoygateway.extension.EnvoyGatewayExtension";

const T = {
  listener: "envoy.config.listener.v3.Listener",
  cluster: "envoy.config.cluster.v3.Cluster",
  httpFilter: "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter",
};

// Field numbers, read from the protos by name.
const LISTENER = fieldNumbers(T.listener, ["name", "address", "filter_chains", "default_filter_chain"]);
const ADDRESS = fieldNumbers("envoy.config.core.v3.Address", ["socket_address"]);
const SOCKET_ADDRESS = fieldNumbers("envoy.config.core.v3.SocketAddress", ["port_value"]);
const FILTER_CHAIN = fieldNumbers("envoy.config.listener.v3.FilterChain", ["filters"]);
const NETWORK_FILTER = fieldNumbers("envoy.config.listener.v3.Filter", ["name", "typed_config"]);
const ANY = fieldNumbers("google.protobuf.Any", ["type_url", "value"]);
const HCM = fieldNumbers("envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", ["http_filters", "early_header_mutation_extensions"]);
const EXTENSION_CONFIG = fieldNumbers("envoy.config.core.v3.TypedExtensionConfig", ["name"]);
const HTTP_FILTER = fieldNumbers(T.httpFilter, ["name", "typed_config", "config_discovery"]);
const WASM = fieldNumbers("envoy.extensions.filters.http.wasm.v3.Wasm", ["config"]);
const PLUGIN_CONFIG = fieldNumbers("envoy.extensions.wasm.v3.PluginConfig", ["root_id"]);
const CLUSTER = fieldNumbers(T.cluster, ["name", "type", "cluster_type", "eds_cluster_config", "lb_policy", "load_assignment", "load_balancing_policy", "circuit_breakers", "track_cluster_stats"]);
const CLUSTER_EDS = protoRoot().lookupEnum(`${T.cluster}.DiscoveryType`).values.EDS!;
// Envoy Gateway's messages (proto/extension/).
const EXTENSION_RESOURCE = fieldNumbers("envoygateway.extension.ExtensionResource", ["unstructured_bytes"]);
const LISTENER_REQUEST = fieldNumbers("envoygateway.extension.PostHTTPListenerModifyRequest", ["listener"]);
const LISTENER_RESPONSE = fieldNumbers("envoygateway.extension.PostHTTPListenerModifyResponse", ["listener"]);
const CLUSTER_REQUEST = fieldNumbers("envoygateway.extension.PostClusterModifyRequest", ["cluster", "post_cluster_context"]);
const CLUSTER_CONTEXT = fieldNumbers("envoygateway.extension.PostClusterExtensionContext", ["backend_extension_resources"]);
const CLUSTER_RESPONSE = fieldNumbers("envoygateway.extension.PostClusterModifyResponse", ["cluster"]);
const ROUTE_REQUEST = fieldNumbers("envoygateway.extension.PostRouteModifyRequest", ["route", "post_route_context"]);
const ROUTE_CONTEXT = fieldNumbers("envoygateway.extension.PostRouteExtensionContext", ["extension_resources"]);
const ROUTE_RESPONSE = fieldNumbers("envoygateway.extension.PostRouteModifyResponse", ["route"]);
const VHOST_REQUEST = fieldNumbers("envoygateway.extension.PostVirtualHostModifyRequest", ["virtual_host"]);
const VHOST_RESPONSE = fieldNumbers("envoygateway.extension.PostVirtualHostModifyResponse", ["virtual_host"]);
const TRANSLATE_REQUEST = fieldNumbers("envoygateway.extension.PostTranslateModifyRequest", ["clusters", "secrets", "listeners", "routes"]);
const TRANSLATE_RESPONSE = fieldNumbers("envoygateway.extension.PostTranslateModifyResponse", ["clusters", "secrets", "listeners", "routes"]);

const HCM_NAME = "envoy.filters.network.http_connection_manager";
const ROUTER_NAME = "envoy.filters.http.router";

export interface HookOptions {
  /** Where Envoy reaches this server's xDS (`host:port`, a Service name in a cluster), with Envoy's
   * side of mutual TLS when the xDS server requires it. */
  xds: { target: string; tls?: XdsClientTls | undefined };
  /** The current routing configuration (pools with their attach-to targets). */
  config: () => RoutingConfig;
  /** When Envoys fetch the filter module from this server over HTTP: the cluster to add for it. */
  moduleCluster?: { name: string; host: string; port: number } | undefined;
  /** Each EnvoyExtensionPolicy Wasm filter fed over ECDS, for the publisher to serve under its name. */
  onPolicyFilter?: PolicyFilterSeen | undefined;
  /** Each EDS name of several pools' endpoints the Cluster hook gives a cluster, for the publisher
   * to serve (the xDS server answers only names it publishes). */
  onPoolUnion?: ((edsName: string) => void) | undefined;
  log?: ((message: string) => void) | undefined;
}

export interface ExtensionResource { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string }; spec?: Record<string, unknown> }

/** Runs `edit` on the decoded payload of a length-delimited field and stores the result back. */
function editNested(field: WireField, edit: (m: WireMessage) => boolean): boolean {
  const message = WireMessage.decode(field.bytes);
  if (!edit(message)) return false;
  field.bytes = message.encode();
  return true;
}

function isOurWasm(filter: WireMessage): boolean {
  const typed = filter.first(HTTP_FILTER.typed_config);
  if (!typed) return false;
  const any = WireMessage.decode(typed.bytes);
  if (any.string(ANY.type_url) !== WASM_TYPE_URL) return false;
  const wasm = WireMessage.decode(any.first(ANY.value)?.bytes ?? new Uint8Array());
  const plugin = WireMessage.decode(wasm.first(WASM.config)?.bytes ?? new Uint8Array());
  return plugin.string(PLUGIN_CONFIG.root_id) === FILTER_NAME;
}

/** Called with each EnvoyExtensionPolicy Wasm filter the hook feeds over ECDS: its name (the ECDS
 * resource name) and its Wasm message as Envoy Gateway built it (policy-filter.ts). */
export type PolicyFilterSeen = (name: string, wasm: Uint8Array) => void;

/** Inserts the ECDS filter before the router (once), and feeds an attached infergate Wasm filter over ECDS. */
function editHttpFilters(hcm: WireMessage, attach: boolean, xds: XdsTransport, seen: PolicyFilterSeen): boolean {
  let changed = false;
  const filters = hcm.all(HCM.http_filters);
  for (const f of filters) {
    const filter = WireMessage.decode(f.bytes);
    if (!isOurWasm(filter)) continue;
    // An EnvoyExtensionPolicy put our module here inline; keep its name and flags, feed it over ECDS
    // (with the policy's own module: policy-filter.ts).
    const wasm = WireMessage.decode(filter.first(HTTP_FILTER.typed_config)!.bytes).first(ANY.value)?.bytes ?? new Uint8Array();
    seen(filter.string(HTTP_FILTER.name) ?? "", wasm);
    filter.remove(HTTP_FILTER.typed_config, HTTP_FILTER.config_discovery);
    filter.add(HTTP_FILTER.config_discovery, encodeJson("envoy.config.core.v3.ExtensionConfigSource", filterConfigDiscovery(xds)));
    f.bytes = filter.encode();
    changed = true;
  }
  const names = filters.map((f) => WireMessage.decode(f.bytes).string(HTTP_FILTER.name));
  if (attach && !names.includes(FILTER_NAME)) {
    const router = hcm.fields.findIndex((f) => f.field === HCM.http_filters && WireMessage.decode(f.bytes).string(HTTP_FILTER.name) === ROUTER_NAME);
    const entry: WireField = { field: HCM.http_filters, wireType: WIRE_LENGTH_DELIMITED, bytes: encodeJson(T.httpFilter, ecdsHttpFilter(FILTER_NAME, xds)) };
    if (router >= 0) hcm.fields.splice(router, 0, entry);
    else hcm.fields.push(entry);
    changed = true;
  }
  return changed;
}

/** Removes client-sent destination and mirror headers before any filter (once per HCM; Envoy
 * Gateway's own early header mutations, from a ClientTrafficPolicy, are kept and run first). */
function stripClientHeader(hcm: WireMessage): boolean {
  if (hcm.all(HCM.early_header_mutation_extensions).some((e) => WireMessage.decode(e.bytes).string(EXTENSION_CONFIG.name) === STRIP_DESTINATION_NAME)) return false;
  hcm.add(HCM.early_header_mutation_extensions, encodeJson("envoy.config.core.v3.TypedExtensionConfig", stripClientDestination()));
  return true;
}

function listenerPort(listener: WireMessage): number | undefined {
  const address = listener.first(LISTENER.address);
  if (!address) return undefined;
  const socket = WireMessage.decode(address.bytes).first(ADDRESS.socket_address);
  return socket ? WireMessage.decode(socket.bytes).varint(SOCKET_ADDRESS.port_value) : undefined;
}

/** Whether an InferencePool's `attach-to` names this listener: `<namespace>/<gateway>/<listener>`, and the port. */
function attachedPools(listenerName: string, port: number | undefined, pools: PoolConfig[]): PoolConfig[] {
  const [namespace, gateway] = listenerName.split("/");
  return pools.filter((p) => p.attachTo !== undefined
    && p.attachTo.name === gateway
    && (p.attachTo.namespace ?? p.namespace) === namespace
    && (p.attachTo.port === undefined || p.attachTo.port === port));
}

function modifyListener(bytes: Uint8Array, pools: PoolConfig[], xds: XdsTransport, seen: PolicyFilterSeen): { bytes: Uint8Array; changed: boolean } {
  const listener = WireMessage.decode(bytes);
  const attach = attachedPools(listener.string(LISTENER.name) ?? "", listenerPort(listener), pools).length > 0;
  let changed = false;
  for (const chain of [...listener.all(LISTENER.filter_chains), ...listener.all(LISTENER.default_filter_chain)]) {
    changed = editNested(chain, (fc) => {
      let any = false;
      for (const nf of fc.all(FILTER_CHAIN.filters)) {
        any = editNested(nf, (filter) => {
          if (filter.string(NETWORK_FILTER.name) !== HCM_NAME) return false;
          const typed = filter.first(NETWORK_FILTER.typed_config);
          return typed !== undefined && editNested(typed, (a) => {
            const value = a.first(ANY.value);
            return value !== undefined && editNested(value, (hcm) => {
              const stripped = stripClientHeader(hcm);
              const fed = editHttpFilters(hcm, attach, xds, seen);
              return insertPickerFilter(hcm, pools) || fed || stripped;
            });
          });
        }) || any;
      }
      return any;
    }) || changed;
  }
  return changed ? { bytes: listener.encode(), changed } : { bytes, changed };
}

/** An InferencePool backend's cluster becomes EDS (endpoints from this server) + override_host.
 * A rule that splits between pools has one cluster for all of them (Envoy Gateway passes every
 * pool of the rule): its endpoints are the union, and the filter draws the pool by the rule's
 * weights (the snapshot's route record). Circuit breakers Envoy Gateway set (its defaults allow
 * 1024 retries in flight, or a BackendTrafficPolicy's) are kept; a cluster without any gets the
 * pool clusters' own. */
function modifyCluster(bytes: Uint8Array, resources: ExtensionResource[], xds: XdsTransport, onPoolUnion?: (edsName: string) => void): { bytes: Uint8Array; changed: boolean } {
  const ids = [...new Set(resources.filter((r) => r.kind === "InferencePool" && r.metadata?.name)
    .map((r) => poolId(r.metadata!.namespace ?? "default", r.metadata!.name!)))];
  if (ids.length === 0) return { bytes, changed: false };
  const edsName = poolsEdsName(ids);
  if (ids.length > 1) onPoolUnion?.(edsName);
  const cluster = WireMessage.decode(bytes);
  cluster.remove(CLUSTER.type, CLUSTER.cluster_type, CLUSTER.eds_cluster_config, CLUSTER.lb_policy, CLUSTER.load_assignment, CLUSTER.load_balancing_policy);
  cluster.addVarint(CLUSTER.type, CLUSTER_EDS);
  cluster.add(CLUSTER.eds_cluster_config, encodeJson(`${T.cluster}.EdsClusterConfig`, edsClusterConfig(edsName, xds)));
  cluster.add(CLUSTER.load_balancing_policy, encodeJson("envoy.config.cluster.v3.LoadBalancingPolicy", overrideHostPolicy()));
  if (!cluster.first(CLUSTER.circuit_breakers)) cluster.add(CLUSTER.circuit_breakers, encodeJson("envoy.config.cluster.v3.CircuitBreakers", poolCircuitBreakers()));
  // Requests per endpoint in Envoy's own stats (the filter names no counter after an endpoint).
  if (!cluster.first(CLUSTER.track_cluster_stats)) cluster.add(CLUSTER.track_cluster_stats, encodeJson("envoy.config.cluster.v3.TrackClusterStats", { per_endpoint_stats: true }));
  return { bytes: cluster.encode(), changed: true };
}

/** The cluster Envoy Gateway built for a RequestMirror whose backend is an InferencePool (named
 * `<rule cluster>-mirror-<filter index>`; the HTTPRoute says which pool) becomes EDS of that pool,
 * steered by the filter's mirror header, with bounded circuit breakers. Other fields are kept. */
function modifyMirrorCluster(bytes: Uint8Array, xds: XdsTransport): Uint8Array {
  const cluster = WireMessage.decode(bytes);
  const name = cluster.string(CLUSTER.name) ?? "";
  const ours = mirrorCluster(name, routeEdsName(name), xds) as Record<"eds_cluster_config" | "load_balancing_policy" | "circuit_breakers", Json>;
  cluster.remove(CLUSTER.type, CLUSTER.cluster_type, CLUSTER.eds_cluster_config, CLUSTER.lb_policy, CLUSTER.load_assignment, CLUSTER.load_balancing_policy, CLUSTER.circuit_breakers);
  cluster.addVarint(CLUSTER.type, CLUSTER_EDS);
  cluster.add(CLUSTER.eds_cluster_config, encodeJson(`${T.cluster}.EdsClusterConfig`, ours.eds_cluster_config));
  cluster.add(CLUSTER.load_balancing_policy, encodeJson("envoy.config.cluster.v3.LoadBalancingPolicy", ours.load_balancing_policy));
  cluster.add(CLUSTER.circuit_breakers, encodeJson("envoy.config.cluster.v3.CircuitBreakers", ours.circuit_breakers));
  return cluster.encode();
}

/** The Kubernetes objects of a context's ExtensionResource list (JSON in unstructured_bytes). */
function decodeResources(field: WireField | undefined, listField: number): ExtensionResource[] {
  if (!field) return [];
  return WireMessage.decode(field.bytes).all(listField).flatMap((r) => {
    const raw = WireMessage.decode(r.bytes).first(EXTENSION_RESOURCE.unstructured_bytes)?.bytes;
    try { return raw ? [JSON.parse(Buffer.from(raw).toString("utf8")) as ExtensionResource] : []; } catch { return []; }
  });
}

type Handler = (request: WireMessage) => WireMessage;

function method(name: string, handler: Handler, log: (m: string) => void): [grpc.MethodDefinition<WireMessage, WireMessage>, grpc.handleUnaryCall<WireMessage, WireMessage>] {
  return [{
    path: `/${SERVICE}/${name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: WireMessage) => Buffer.from(m.encode()),
    requestDeserialize: (b: Buffer) => WireMessage.decode(new Uint8Array(b)),
    responseSerialize: (m: WireMessage) => Buffer.from(m.encode()),
    responseDeserialize: (b: Buffer) => WireMessage.decode(new Uint8Array(b)),
  }, (call, callback) => {
    try {
      callback(null, handler(call.request));
    } catch (err) {
      log(`${name} failed; Envoy Gateway keeps its last good configuration: ${(err as Error).message}`);
      callback({ code: grpc.status.INTERNAL, details: (err as Error).message });
    }
  }];
}

/** A response message holding one resource field. */
const single = (field: number, bytes: Uint8Array): WireMessage => new WireMessage([{ field, wireType: WIRE_LENGTH_DELIMITED, bytes }]);

export class GatewayHooks {
  private readonly server = new grpc.Server();

  constructor(private readonly opts: HookOptions) {
    const log = opts.log ?? ((m: string) => console.error(m));
    const methods: Record<string, Handler> = {
      PostHTTPListenerModify: (req) => this.onListener(req),
      PostClusterModify: (req) => this.onCluster(req),
      PostTranslateModify: (req) => this.onTranslate(req),
      PostRouteModify: (req) => this.onRoute(req),
      // No change: the virtual host as given.
      PostVirtualHostModify: (req) => new WireMessage(req.all(VHOST_REQUEST.virtual_host).map((f) => ({ ...f, field: VHOST_RESPONSE.virtual_host }))),
    };
    const definition: Record<string, grpc.MethodDefinition<WireMessage, WireMessage>> = {};
    const implementation: Record<string, grpc.handleUnaryCall<WireMessage, WireMessage>> = {};
    for (const [name, handler] of Object.entries(methods)) {
      const [def, impl] = method(name, handler, log);
      definition[name] = def;
      implementation[name] = impl;
    }
    this.server.addService(definition as grpc.ServiceDefinition, implementation as grpc.UntypedServiceImplementation);
  }

  /** Listens in plaintext, or with `credentials` (mutual TLS: tls.ts). */
  async listen(host: string, port: number, credentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
    return new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`${host}:${port}`, credentials, (err, p) => (err ? reject(err) : resolve(p))));
  }

  close(): void { this.server.forceShutdown(); }

  private onListener(req: WireMessage): WireMessage {
    const listener = req.first(LISTENER_REQUEST.listener);
    if (!listener) return new WireMessage();
    return single(LISTENER_RESPONSE.listener, modifyListener(listener.bytes, this.opts.config().pools, this.opts.xds, this.policyFilterSeen).bytes);
  }

  /** A route to a v1 pool with an endpoint picker calls it; any other route comes back as given. */
  private onRoute(req: WireMessage): WireMessage {
    const field = req.first(ROUTE_REQUEST.route);
    if (!field) return new WireMessage();
    const resources = decodeResources(req.first(ROUTE_REQUEST.post_route_context), ROUTE_CONTEXT.extension_resources);
    const route = WireMessage.decode(field.bytes);
    return single(ROUTE_RESPONSE.route, editPickerRoute(route, poolOf(resources, this.opts.config().pools)) ? route.encode() : field.bytes);
  }

  private onCluster(req: WireMessage): WireMessage {
    const cluster = req.first(CLUSTER_REQUEST.cluster);
    if (!cluster) return new WireMessage();
    const resources = decodeResources(req.first(CLUSTER_REQUEST.post_cluster_context), CLUSTER_CONTEXT.backend_extension_resources);
    return single(CLUSTER_RESPONSE.cluster, modifyCluster(cluster.bytes, resources, this.opts.xds, this.opts.onPoolUnion).bytes);
  }

  /** Each list in the response replaces Envoy Gateway's, so everything is returned. Listeners
   * (sent with `translation.listener.includeAll`) get the same treatment as in the listener hook. */
  private onTranslate(req: WireMessage): WireMessage {
    const out = new WireMessage();
    const clusters = req.all(TRANSLATE_REQUEST.clusters);
    const mirrors = new Set(this.opts.config().routes.flatMap((r) => r.mirrors.map((m) => m.cluster)));
    for (const c of clusters) {
      const mirror = mirrors.size > 0 && mirrors.has(WireMessage.decode(c.bytes).string(CLUSTER.name) ?? "");
      out.add(TRANSLATE_RESPONSE.clusters, mirror ? modifyMirrorCluster(c.bytes, this.opts.xds) : c.bytes);
    }
    const module = this.opts.moduleCluster;
    if (module && !clusters.some((c) => WireMessage.decode(c.bytes).string(CLUSTER.name) === module.name)) {
      out.add(TRANSLATE_RESPONSE.clusters, encodeJson(T.cluster, hostCluster(module)));
    }
    const pools = this.opts.config().pools;
    const names = new Set(clusters.map((c) => WireMessage.decode(c.bytes).string(CLUSTER.name) ?? ""));
    for (const c of missingPickerClusters(pools, names, this.opts.xds)) out.add(TRANSLATE_RESPONSE.clusters, c);
    for (const s of req.all(TRANSLATE_REQUEST.secrets)) out.add(TRANSLATE_RESPONSE.secrets, s.bytes);
    for (const l of req.all(TRANSLATE_REQUEST.listeners)) out.add(TRANSLATE_RESPONSE.listeners, modifyListener(l.bytes, pools, this.opts.xds, this.policyFilterSeen).bytes);
    for (const r of req.all(TRANSLATE_REQUEST.routes)) out.add(TRANSLATE_RESPONSE.routes, r.bytes);
    return out;
  }

  private readonly policyFilterSeen: PolicyFilterSeen = (name, wasm) => this.opts.onPolicyFilter?.(name, wasm);
}
