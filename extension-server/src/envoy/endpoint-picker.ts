// The Envoy resources that wire a pool to its endpoint picker (a v1 InferencePool's
// `endpointPickerRef`) over ext_proc, per the Inference Extension's endpoint picker protocol. The
// standalone bootstrap (envoy/bootstrap.ts) and the Envoy Gateway hooks (gateway/hooks.ts) use the
// same builders.
//
//   HTTP filters:  infergate (Wasm) → ext_proc "infergate-endpoint-picker" → router
//
// - The infergate filter runs first, as on every route: it strips a client's destination header,
//   validates the body and the model, rewrites and sheds, and sets its own pick. That pick is what
//   FailOpen falls back to.
// - The ext_proc filter's own configuration sends nothing, so it does nothing on other routes. A
//   picker pool's route (pickerRouteConfig) overrides the processing mode, the cluster (that
//   pool's picker) and the failure mode. (It cannot be disabled in the listener and enabled per
//   route: Envoy decides that when the request arrives, on the route matched before the infergate
//   filter has named the pool; ext_proc reads its per-route overrides later, on the route the
//   infergate filter's headers select.) It sends the request
//   headers and the body (FULL_DUPLEX_STREAMED, the mode the EPP v1.5.0 speaks: it answers the
//   headers only once the whole body has arrived, and streams the body back), and the response
//   headers, with the `envoy.lb` dynamic metadata (the served endpoint) for the picker to see.
//   The picker's answer replaces the destination header, and is also accepted from `envoy.lb`
//   metadata (the pool cluster's override_host reads that first).
// - FailOpen and FailClose. With a body in flight, Envoy's ext_proc cannot fail open once it has
//   handed the body to the processor: a processor that is down gives every request with a body the
//   error status, even with failure_mode_allow (bench/peers/EPP.md shows it). It does fail open when
//   the stream cannot even start, which is the case when the picker cluster has no healthy host.
//   So the picker cluster is actively health checked (a TCP connect, plus the TLS handshake when
//   the picker speaks TLS), the first connection refused ejects the host at once (outlier
//   detection on local-origin failures), and the panic threshold is 0, so an unhealthy picker is
//   never tried: FailOpen then continues with the infergate filter's pick, FailClose answers 503
//   (status_on_error). Health changes reach the workers with no merge window (below), so this
//   holds on every death of the picker, not only its first. A reference that does not resolve
//   gives an empty cluster: the same.
import type { EndpointPicker } from "../config/endpoint-picker.ts";
import { LB_METADATA_NAMESPACE, SERVED_ENDPOINT_KEY } from "../contract.ts";
import type { Json } from "../xds/encode.ts";
import { typed, xdsConfigSource, type XdsTransport } from "./resources.ts";

/** The ext_proc filter's name in the HTTP connection manager (and its typed_per_filter_config key). */
export const PICKER_FILTER_NAME = "infergate-endpoint-picker";

/** The cluster (and EDS resource) of a pool's picker; `pool` is its `<namespace>/<name>`. */
export function pickerClusterName(pool: string): string {
  return `infergate-picker/${pool}`;
}

/** Requests at once per picker and Envoy: each holds one ext_proc stream until its response
 * headers. Envoy's default (1024) would answer 503 to a busy gateway. */
const PICKER_MAX_STREAMS = 65_536;

/** What is sent to the picker, per request. */
function processingMode(): Json {
  return {
    request_header_mode: "SEND",
    request_body_mode: "FULL_DUPLEX_STREAMED",
    // FULL_DUPLEX_STREAMED needs trailers sent: they tell the picker the body is complete.
    request_trailer_mode: "SEND",
    // The response headers carry the served endpoint to the picker; the response body stays out
    // of the callout, so streaming tokens never wait for it.
    response_header_mode: "SEND",
    response_body_mode: "NONE",
    response_trailer_mode: "SKIP",
  };
}

/** Nothing is sent: the filter's mode on every route that does not override it. */
function nothingSent(): Json {
  return { request_header_mode: "SKIP", response_header_mode: "SKIP", request_body_mode: "NONE", response_body_mode: "NONE", request_trailer_mode: "SKIP", response_trailer_mode: "SKIP" };
}

/**
 * The ext_proc HttpFilter: a no-op until a route overrides its mode. `defaultCluster` only fills
 * the required grpc_service: every route that uses the filter names its own pool's picker.
 */
export function pickerHttpFilter(defaultCluster: string): Json {
  return {
    name: PICKER_FILTER_NAME,
    typed_config: typed("envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor", {
      grpc_service: { envoy_grpc: { cluster_name: defaultCluster } },
      processing_mode: nothingSent(),
      failure_mode_allow: false,
      // FailClose, or a picker that fails mid-request: 503, as the protocol's "no endpoint".
      status_on_error: { code: "ServiceUnavailable" },
      metadata_options: {
        // The served endpoint (override_host's selected_host_key) goes to the picker on the
        // response path; the picker's `envoy.lb` answer is accepted on the request path.
        forwarding_namespaces: { untyped: [LB_METADATA_NAMESPACE] },
        receiving_namespaces: { untyped: [LB_METADATA_NAMESPACE] },
      },
      stat_prefix: "infergate_picker",
    }),
  };
}

/** The gRPC :authority: the Service's cluster DNS name (Envoy would send the cluster name, which
 * has slashes, and an HTTP/2 server may refuse the stream for it). */
function pickerAuthority(picker: EndpointPicker): string {
  const [namespace, name] = picker.service.split("/");
  return `${name}.${namespace}.svc${picker.port ? `:${picker.port}` : ""}`;
}

/** Route.typed_per_filter_config entry that has the picker filter call a pool's picker. */
export function pickerRouteConfig(pool: string, picker: EndpointPicker): Json {
  return typed("envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute", {
    overrides: {
      processing_mode: processingMode(),
      grpc_service: { envoy_grpc: { cluster_name: pickerClusterName(pool), authority: pickerAuthority(picker) } },
      failure_mode_allow: picker.failureMode === "FailOpen",
    },
  });
}

/** Route.response_headers_to_add: the endpoint that served the request, for clients and checks. */
export function servedEndpointHeader(): Json {
  return { header: { key: SERVED_ENDPOINT_KEY, value: "%UPSTREAM_REMOTE_ADDRESS%" }, append_action: "OVERWRITE_IF_EXISTS_OR_ADD" };
}

/**
 * A pool's picker cluster: its endpoint (the Service's cluster IP and port) over EDS from this
 * server, HTTP/2, TLS without verification (the picker's certificate is self-signed by default;
 * the Inference Extension's reference configuration does the same) unless `tls` is false.
 */
export function pickerCluster(pool: string, xds: XdsTransport, tls: boolean): Json {
  const name = pickerClusterName(pool);
  return {
    name, type: "EDS", connect_timeout: "1s",
    eds_cluster_config: { service_name: name, eds_config: xdsConfigSource(xds) },
    typed_extension_protocol_options: {
      "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": typed("envoy.extensions.upstreams.http.v3.HttpProtocolOptions", {
        explicit_http_config: { http2_protocol_options: {} },
      }),
    },
    ...(tls ? { transport_socket: { name: "envoy.transport_sockets.tls", typed_config: typed("envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext", { common_tls_context: { validation_context: {} } }) } } : {}),
    // Envoy learns the picker is down before a request's body is handed to it (see the top).
    health_checks: [{ timeout: "1s", interval: "1s", no_traffic_interval: "1s", unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} }],
    outlier_detection: {
      split_external_local_origin_errors: true, consecutive_local_origin_failure: 1, enforcing_consecutive_local_origin_failure: 100,
      base_ejection_time: "1s", max_ejection_percent: 100,
    },
    // update_merge_window 0: a health change reaches the workers' load balancers at once. Envoy's
    // default (1 s) applies the first change at once but holds the next ones until the window ends,
    // so a picker that died soon after it came back kept being chosen, and every FailOpen request
    // in that second failed (bench/peers/EPP.md, "picker failover").
    common_lb_config: { healthy_panic_threshold: { value: 0 }, update_merge_window: "0s" },
    circuit_breakers: { thresholds: [{ priority: "DEFAULT", max_connections: PICKER_MAX_STREAMS, max_pending_requests: PICKER_MAX_STREAMS, max_requests: PICKER_MAX_STREAMS }] },
  };
}

/** The picker cluster's endpoints: the resolved address, or none (requests then follow the failure mode). */
export function pickerLoadAssignment(pool: string, picker: EndpointPicker): Json {
  const a = picker.address;
  return {
    cluster_name: pickerClusterName(pool),
    endpoints: a ? [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: a.ip, port_value: a.port } } } }] }] : [],
  };
}
