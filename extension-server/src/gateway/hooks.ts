// Envoy Gateway extension hooks (envoygateway.extension.EnvoyGatewayExtension). Envoy Gateway
// calls them while it translates Gateway API resources into xDS. We use them to:
//   - PostHTTPListenerModify: put the infergate filter, fed over ECDS by this server, before the
//     router of every listener an InferencePool's `attach-to` annotation names, and upgrade a Wasm
//     filter an EnvoyExtensionPolicy attached (root_id "infergate") to the same ECDS feed;
//   - PostClusterModify: turn the cluster built for an InferencePool backendRef into an EDS cluster
//     of the pool's endpoints (from this server) with the override_host policy the filter steers;
//   - PostTranslateModify: add the cluster Envoy downloads the filter module through (when the
//     module is served by this server), and the same listener edit when all listeners are sent.
// Envoy reaches this server's xDS through its Google gRPC client (see grpcConfigSource).
// Resources are edited at the wire level (xds/wire.ts): every field we do not touch, including
// fields newer than our protos, goes back to Envoy Gateway byte for byte. A hook that cannot make
// sense of its input returns it unchanged and logs why, so a bad edit never breaks translation.
import * as grpc from "@grpc/grpc-js";
import type { PoolConfig, RoutingConfig } from "../config/routing-config.ts";
import { DESTINATION_HEADER } from "../envoy/routes.ts";
import { poolClusterName } from "../envoy/bootstrap.ts";
import { protoRoot, typeUrl } from "../xds/protos.ts";
import { FILTER_CONFIG_NAME, WASM_TYPE_URL } from "../xds/wasm-config.ts";
import { WireMessage, type WireField } from "../xds/wire.ts";

export const SERVICE = "envoygateway.extension.EnvoyGatewayExtension";

// Field numbers (Envoy API v3).
const LISTENER = { name: 1, address: 2, filterChains: 3, defaultFilterChain: 25 };
const FILTER_CHAIN = { filters: 3 };
const NETWORK_FILTER = { name: 1, typedConfig: 4 };
const ANY = { typeUrl: 1, value: 2 };
const HCM = { httpFilters: 5 };
const HTTP_FILTER = { name: 1, typedConfig: 4, configDiscovery: 5 };
const CLUSTER = { name: 1, type: 2, edsClusterConfig: 3, lbPolicy: 6, loadAssignment: 33, clusterType: 38, loadBalancingPolicy: 41 };
const ADDRESS = { socketAddress: 1 };
const SOCKET_ADDRESS = { portValue: 3 };
const HCM_NAME = "envoy.filters.network.http_connection_manager";
const ROUTER_NAME = "envoy.filters.http.router";

export interface HookOptions {
  /** Where Envoy reaches this server's xDS (a Service name in a cluster). */
  xdsHost: string;
  xdsPort: number;
  /** The current routing configuration (pools with their attach-to targets). */
  config: () => RoutingConfig;
  /** When Envoys fetch the filter module from this server over HTTP: the cluster to add for it. */
  moduleCluster?: { name: string; host: string; port: number } | undefined;
  log?: (message: string) => void;
}

export interface ExtensionResource { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string }; spec?: Record<string, unknown> }

/**
 * Where Envoy fetches ECDS and EDS from this server. Envoy only lets an `envoy_grpc` config source
 * name a cluster from its bootstrap, and Envoy Gateway delivers clusters over CDS, so the hooks
 * use Envoy's Google gRPC client with the server's address instead: no bootstrap change needed.
 */
function grpcConfigSource(target: string): Record<string, unknown> {
  return {
    api_config_source: { api_type: "GRPC", transport_api_version: "V3", grpc_services: [{ google_grpc: { target_uri: target, stat_prefix: "infergate_xds" } }] },
    resource_api_version: "V3",
  };
}

/** The HttpFilter that loads infergate's configuration (and snapshot) over ECDS. */
export function ecdsHttpFilter(name: string, xdsTarget: string): Uint8Array {
  const HttpFilter = protoRoot().lookupType("envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter");
  return HttpFilter.encode(HttpFilter.fromObject({
    name,
    config_discovery: { config_source: grpcConfigSource(xdsTarget), type_urls: [WASM_TYPE_URL] },
  })).finish();
}

/** The cluster through which Envoy downloads the filter module from this server. */
function httpCluster(c: { name: string; host: string; port: number }): Uint8Array {
  const Cluster = protoRoot().lookupType("envoy.config.cluster.v3.Cluster");
  return Cluster.encode(Cluster.fromObject({
    name: c.name, type: "STRICT_DNS", connect_timeout: { seconds: 2 },
    load_assignment: { cluster_name: c.name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: c.host, port_value: c.port } } } }] }] },
  })).finish();
}

function overrideHostPolicy(): Uint8Array {
  const root = protoRoot();
  const LoadBalancingPolicy = root.lookupType("envoy.config.cluster.v3.LoadBalancingPolicy");
  const policy = (name: string, type: string, value: Uint8Array) => LoadBalancingPolicy.encode(LoadBalancingPolicy.fromObject({
    policies: [{ typed_extension_config: { name, typed_config: { type_url: typeUrl(type), value } } }],
  })).finish();
  const fallback = policy("envoy.load_balancing_policies.round_robin", "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin", new Uint8Array());
  // OverrideHost is newer than our vendored protos (Envoy 1.35): encoded field by field from the
  // Envoy API — override_host_sources = 1 (OverrideHostSource.header = 1), fallback_policy = 3.
  const source = new WireMessage();
  source.add(1, Buffer.from(DESTINATION_HEADER));
  const overrideHost = new WireMessage();
  overrideHost.add(1, source.encode());
  overrideHost.add(3, fallback);
  return policy("envoy.load_balancing_policies.override_host", "envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost", overrideHost.encode());
}

function edsClusterConfig(serviceName: string, xdsTarget: string): Uint8Array {
  const Cluster = protoRoot().lookupType("envoy.config.cluster.v3.Cluster");
  const bytes = Cluster.encode(Cluster.fromObject({ eds_cluster_config: { service_name: serviceName, eds_config: grpcConfigSource(xdsTarget) } })).finish();
  return WireMessage.decode(bytes).first(CLUSTER.edsClusterConfig)!.bytes;
}

/** Runs `edit` on the decoded payload of a length-delimited field and stores the result back. */
function editNested(field: WireField, edit: (m: WireMessage) => boolean): boolean {
  const message = WireMessage.decode(field.bytes);
  if (!edit(message)) return false;
  field.bytes = message.encode();
  return true;
}

function isOurWasm(filter: WireMessage): boolean {
  const typed = filter.first(HTTP_FILTER.typedConfig);
  if (!typed) return false;
  const any = WireMessage.decode(typed.bytes);
  if (any.string(ANY.typeUrl) !== WASM_TYPE_URL) return false;
  const wasm = WireMessage.decode(any.first(ANY.value)?.bytes ?? new Uint8Array());
  const plugin = WireMessage.decode(wasm.first(1)?.bytes ?? new Uint8Array());
  return plugin.string(2) === FILTER_CONFIG_NAME; // PluginConfig.root_id
}

/** Inserts the ECDS filter before the router (once), and feeds an attached infergate Wasm filter over ECDS. */
function editHttpFilters(hcm: WireMessage, attach: boolean, xdsTarget: string): boolean {
  let changed = false;
  const filters = hcm.all(HCM.httpFilters);
  for (const f of filters) {
    const filter = WireMessage.decode(f.bytes);
    if (!isOurWasm(filter)) continue;
    // An EnvoyExtensionPolicy put our module here inline; keep its name and flags, feed it over ECDS.
    filter.remove(HTTP_FILTER.typedConfig, HTTP_FILTER.configDiscovery);
    filter.add(HTTP_FILTER.configDiscovery, WireMessage.decode(ecdsHttpFilter("x", xdsTarget)).first(HTTP_FILTER.configDiscovery)!.bytes);
    f.bytes = filter.encode();
    changed = true;
  }
  const names = filters.map((f) => WireMessage.decode(f.bytes).string(HTTP_FILTER.name));
  if (attach && !names.includes(FILTER_CONFIG_NAME)) {
    const router = hcm.fields.findIndex((f) => f.field === HCM.httpFilters && WireMessage.decode(f.bytes).string(HTTP_FILTER.name) === ROUTER_NAME);
    const entry: WireField = { field: HCM.httpFilters, wireType: 2, bytes: ecdsHttpFilter(FILTER_CONFIG_NAME, xdsTarget) };
    if (router >= 0) hcm.fields.splice(router, 0, entry);
    else hcm.fields.push(entry);
    changed = true;
  }
  return changed;
}

function listenerPort(listener: WireMessage): number | undefined {
  const address = listener.first(LISTENER.address);
  if (!address) return undefined;
  const socket = WireMessage.decode(address.bytes).first(ADDRESS.socketAddress);
  return socket ? WireMessage.decode(socket.bytes).varint(SOCKET_ADDRESS.portValue) : undefined;
}

/** Whether an InferencePool's `attach-to` names this listener: `<namespace>/<gateway>/<listener>`, and the port. */
export function attachedPools(listenerName: string, port: number | undefined, pools: PoolConfig[]): PoolConfig[] {
  const [namespace, gateway] = listenerName.split("/");
  return pools.filter((p) => p.attachTo !== undefined
    && p.attachTo.name === gateway
    && (p.attachTo.namespace ?? p.namespace) === namespace
    && (p.attachTo.port === undefined || p.attachTo.port === port));
}

export function modifyListener(bytes: Uint8Array, pools: PoolConfig[], xdsTarget: string): { bytes: Uint8Array; changed: boolean } {
  const listener = WireMessage.decode(bytes);
  const attach = attachedPools(listener.string(LISTENER.name) ?? "", listenerPort(listener), pools).length > 0;
  let changed = false;
  for (const chain of [...listener.all(LISTENER.filterChains), ...listener.all(LISTENER.defaultFilterChain)]) {
    changed = editNested(chain, (fc) => {
      let any = false;
      for (const nf of fc.all(FILTER_CHAIN.filters)) {
        any = editNested(nf, (filter) => {
          if (filter.string(NETWORK_FILTER.name) !== HCM_NAME) return false;
          const typed = filter.first(NETWORK_FILTER.typedConfig);
          return typed !== undefined && editNested(typed, (a) => {
            const value = a.first(ANY.value);
            return value !== undefined && editNested(value, (hcm) => editHttpFilters(hcm, attach, xdsTarget));
          });
        }) || any;
      }
      return any;
    }) || changed;
  }
  return changed ? { bytes: listener.encode(), changed } : { bytes, changed };
}

/** An InferencePool backend's cluster becomes EDS (endpoints from this server) + override_host. */
export function modifyCluster(bytes: Uint8Array, resources: ExtensionResource[], xdsTarget: string): { bytes: Uint8Array; changed: boolean } {
  const pool = resources.find((r) => r.kind === "InferencePool");
  if (!pool?.metadata?.name) return { bytes, changed: false };
  const cluster = WireMessage.decode(bytes);
  cluster.remove(CLUSTER.type, CLUSTER.clusterType, CLUSTER.edsClusterConfig, CLUSTER.lbPolicy, CLUSTER.loadAssignment, CLUSTER.loadBalancingPolicy);
  cluster.addVarint(CLUSTER.type, 3); // EDS
  cluster.add(CLUSTER.edsClusterConfig, edsClusterConfig(poolClusterName(pool.metadata.name), xdsTarget));
  cluster.add(CLUSTER.loadBalancingPolicy, overrideHostPolicy());
  return { bytes: cluster.encode(), changed: true };
}

function decodeResources(field: WireField | undefined, listField: number): ExtensionResource[] {
  if (!field) return [];
  return WireMessage.decode(field.bytes).all(listField).flatMap((r) => {
    const raw = WireMessage.decode(r.bytes).first(1)?.bytes;
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
      log(`${name} failed, returning the resource unchanged: ${(err as Error).message}`);
      callback({ code: grpc.status.INTERNAL, details: (err as Error).message });
    }
  }];
}

export class GatewayHooks {
  private readonly server = new grpc.Server();
  private port = 0;

  constructor(private readonly opts: HookOptions) {
    const log = opts.log ?? ((m: string) => console.error(m));
    const methods: Record<string, Handler> = {
      PostHTTPListenerModify: (req) => this.onListener(req),
      PostClusterModify: (req) => this.onCluster(req),
      PostTranslateModify: (req) => this.onTranslate(req),
      PostRouteModify: (req) => new WireMessage(req.all(1)), // no change: the route as given
      PostVirtualHostModify: (req) => new WireMessage(req.all(1)),
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

  async listen(host: string, port: number): Promise<number> {
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    return this.port;
  }

  close(): void { this.server.forceShutdown(); }

  /** Request: listener = 1, context = 2. Response: listener = 1. */
  private onListener(req: WireMessage): WireMessage {
    const listener = req.first(1);
    if (!listener) return new WireMessage();
    const { bytes } = modifyListener(listener.bytes, this.opts.config().pools, this.xdsTarget);
    return new WireMessage([{ field: 1, wireType: 2, bytes }]);
  }

  /** Request: cluster = 1, context = 2 (backend_extension_resources = 1). Response: cluster = 1. */
  private onCluster(req: WireMessage): WireMessage {
    const cluster = req.first(1);
    if (!cluster) return new WireMessage();
    const { bytes } = modifyCluster(cluster.bytes, decodeResources(req.first(2), 1), this.xdsTarget);
    return new WireMessage([{ field: 1, wireType: 2, bytes }]);
  }

  /** Request: context 1, clusters 2, secrets 3, listeners 4, routes 5. Response: clusters 1, secrets 2,
   * listeners 3, routes 4 — each list replaces Envoy Gateway's, so everything is returned. Listeners
   * (sent with `translation.listener.includeAll`) get the same treatment as in the listener hook. */
  private onTranslate(req: WireMessage): WireMessage {
    const out = new WireMessage();
    const clusters = req.all(2);
    for (const c of clusters) out.add(1, c.bytes);
    const module = this.opts.moduleCluster;
    if (module && !clusters.some((c) => WireMessage.decode(c.bytes).string(CLUSTER.name) === module.name)) out.add(1, httpCluster(module));
    for (const s of req.all(3)) out.add(2, s.bytes);
    const pools = this.opts.config().pools;
    for (const l of req.all(4)) out.add(3, modifyListener(l.bytes, pools, this.xdsTarget).bytes);
    for (const r of req.all(5)) out.add(4, r.bytes);
    return out;
  }

  private get xdsTarget(): string {
    return `${this.opts.xdsHost}:${this.opts.xdsPort}`;
  }
}
