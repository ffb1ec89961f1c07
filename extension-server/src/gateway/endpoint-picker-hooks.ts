// The endpoint picker wiring (envoy/endpoint-picker.ts) applied to Envoy Gateway's resources, at the
// wire level like the rest of gateway/hooks.ts:
//   - listeners that carry the infergate filter get the picker's ext_proc filter before the router
//     (a no-op on every route that does not override it);
//   - the route Envoy Gateway builds for an HTTPRoute backendRef to a v1 InferencePool with a
//     picker (PostRouteModify; the pool arrives in the context's extension resources) overrides
//     the filter to call that pool's picker, and reports the served endpoint;
//   - the pickers' clusters are added to the translation (their endpoints come over EDS from this
//     server).
import { poolId, type PoolConfig } from "../config/routing-config.ts";
import { FILTER_NAME, SERVED_ENDPOINT_KEY } from "../contract.ts";
import { pickerCluster, pickerClusterName, pickerHttpFilter, pickerRouteConfig, PICKER_FILTER_NAME, servedEndpointHeader } from "../envoy/endpoint-picker.ts";
import { WASM_TYPE_URL, type XdsTransport } from "../envoy/resources.ts";
import { encodeJson } from "../xds/encode.ts";
import { fieldNumbers } from "../xds/protos.ts";
import { WIRE_LENGTH_DELIMITED, WireMessage } from "../xds/wire.ts";

const HCM = fieldNumbers("envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", ["http_filters"]);
const HTTP_FILTER = fieldNumbers("envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter", ["name", "config_discovery"]);
const CONFIG_SOURCE = fieldNumbers("envoy.config.core.v3.ExtensionConfigSource", ["type_urls"]);
const ROUTE = fieldNumbers("envoy.config.route.v3.Route", ["typed_per_filter_config", "response_headers_to_add"]);
const HEADER_OPTION = fieldNumbers("envoy.config.core.v3.HeaderValueOption", ["header"]);
const HEADER = fieldNumbers("envoy.config.core.v3.HeaderValue", ["key"]);
const MAP_ENTRY_KEY = 1;
const ROUTER_NAME = "envoy.filters.http.router";

/** The infergate filter is in this HTTP connection manager (by name, or as an ECDS-fed Wasm filter
 * an EnvoyExtensionPolicy attached and the listener hook fed). */
function hasInfergate(filters: WireMessage[]): boolean {
  return filters.some((f) => f.string(HTTP_FILTER.name) === FILTER_NAME
    || WireMessage.decode(f.first(HTTP_FILTER.config_discovery)?.bytes ?? new Uint8Array()).all(CONFIG_SOURCE.type_urls).some((t) => Buffer.from(t.bytes).toString() === WASM_TYPE_URL));
}

/** Inserts the picker filter before the router, once, where the infergate filter runs and some
 * pool has a picker. */
export function insertPickerFilter(hcm: WireMessage, pools: PoolConfig[]): boolean {
  const first = pools.find((p) => p.picker);
  if (!first) return false;
  const filters = hcm.all(HCM.http_filters).map((f) => WireMessage.decode(f.bytes));
  if (!hasInfergate(filters) || filters.some((f) => f.string(HTTP_FILTER.name) === PICKER_FILTER_NAME)) return false;
  const entry = { field: HCM.http_filters, wireType: WIRE_LENGTH_DELIMITED, bytes: encodeJson("envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter", pickerHttpFilter(pickerClusterName(first.id))) };
  const router = hcm.fields.findIndex((f) => f.field === HCM.http_filters && WireMessage.decode(f.bytes).string(HTTP_FILTER.name) === ROUTER_NAME);
  if (router >= 0) hcm.fields.splice(router, 0, entry);
  else hcm.fields.push(entry);
  return true;
}

/** The pool (from this server's configuration) an InferencePool extension resource names. */
export function poolOf(resources: Array<{ kind?: string; metadata?: { name?: string; namespace?: string } }>, pools: PoolConfig[]): PoolConfig | undefined {
  const r = resources.find((x) => x.kind === "InferencePool" && x.metadata?.name);
  return r ? pools.find((p) => p.id === poolId(r.metadata!.namespace ?? "default", r.metadata!.name!)) : undefined;
}

/** A route to a pool with a picker calls it (replacing an earlier entry of ours) and reports the
 * served endpoint. Returns false, leaving the route alone, when the pool has no picker. */
export function editPickerRoute(route: WireMessage, pool: PoolConfig | undefined): boolean {
  if (!pool?.picker) return false;
  const ours = (f: { field: number; bytes: Uint8Array }): boolean =>
    (f.field === ROUTE.typed_per_filter_config && WireMessage.decode(f.bytes).string(MAP_ENTRY_KEY) === PICKER_FILTER_NAME)
    || (f.field === ROUTE.response_headers_to_add && WireMessage.decode(WireMessage.decode(f.bytes).first(HEADER_OPTION.header)?.bytes ?? new Uint8Array()).string(HEADER.key) === SERVED_ENDPOINT_KEY);
  route.fields = route.fields.filter((f) => !ours(f));
  const added = WireMessage.decode(encodeJson("envoy.config.route.v3.Route", {
    typed_per_filter_config: { [PICKER_FILTER_NAME]: pickerRouteConfig(pool.id, pool.picker) },
    response_headers_to_add: [servedEndpointHeader()],
  }));
  route.fields.push(...added.fields);
  return true;
}

/** The picker clusters the translation lacks, encoded. */
export function missingPickerClusters(pools: PoolConfig[], present: Set<string>, xds: XdsTransport): Uint8Array[] {
  return pools.flatMap((p) => (p.picker && !present.has(pickerClusterName(p.id))
    ? [encodeJson("envoy.config.cluster.v3.Cluster", pickerCluster(p.id, xds, p.picker.address?.tls ?? true))]
    : []));
}
