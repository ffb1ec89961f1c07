// What Envoy's ext_proc filter does when its processor cannot be reached, by body mode and by what
// Envoy knows of the processor's health, with failure_mode_allow true (fail open) and
// status_on_error 503. One Envoy 1.39.3, one listener per case, an HTTP backend that counts the
// body bytes it received, and a processor that is either not listening (connections refused) or
// listening without ever answering (a hung process). Each case gets a GET, a POST with 100 bytes
// and a POST with 200 KB.
//
//   npx tsx bench/peers/ext-proc-failure.ts
//   (in a private network namespace: unshare --net bash -c 'ip link set lo up && npx tsx ...')
//
// envoy/endpoint-picker.ts builds infergate's wiring on what this shows (bench/peers/EPP.md).
import { createServer as createHttpServer } from "node:http";
import { createServer as createTcpServer } from "node:net";
import { EnvoyProcess } from "../../extension-server/src/envoy/process.ts";

const typed = (t: string, b: Record<string, unknown> = {}) => ({ "@type": `type.googleapis.com/${t}`, ...b });
const socket = (address: string, port: number) => ({ socket_address: { address, port_value: port } });
const BACKEND = { ip: "127.0.13.1", port: 8000 };
const REFUSED = { ip: "127.0.13.2", port: 9002 };
const HUNG = { ip: "127.0.13.3", port: 9002 };

type ClusterKind = "plain" | "health-checked" | "outlier-only";
interface Case { name: string; bodyMode: string; processor: "refused" | "hung"; cluster: ClusterKind; tls?: boolean }

const CASES: Case[] = [
  { name: "FULL_DUPLEX_STREAMED (the EPP's mode), refused", bodyMode: "FULL_DUPLEX_STREAMED", processor: "refused", cluster: "plain" },
  { name: "STREAMED, refused", bodyMode: "STREAMED", processor: "refused", cluster: "plain" },
  { name: "BUFFERED, refused", bodyMode: "BUFFERED", processor: "refused", cluster: "plain" },
  { name: "NONE (headers only), refused", bodyMode: "NONE", processor: "refused", cluster: "plain" },
  { name: "FULL_DUPLEX_STREAMED, refused, outlier detection only", bodyMode: "FULL_DUPLEX_STREAMED", processor: "refused", cluster: "outlier-only" },
  { name: "FULL_DUPLEX_STREAMED, refused, health-checked (infergate's)", bodyMode: "FULL_DUPLEX_STREAMED", processor: "refused", cluster: "health-checked" },
  { name: "FULL_DUPLEX_STREAMED, hung, health-checked (TCP, plaintext)", bodyMode: "FULL_DUPLEX_STREAMED", processor: "hung", cluster: "health-checked" },
  { name: "FULL_DUPLEX_STREAMED, hung, health-checked (TCP + TLS handshake)", bodyMode: "FULL_DUPLEX_STREAMED", processor: "hung", cluster: "health-checked", tls: true },
  { name: "BUFFERED, hung", bodyMode: "BUFFERED", processor: "hung", cluster: "plain" },
];

function processorCluster(name: string, c: Case): Record<string, unknown> {
  const target = c.processor === "refused" ? REFUSED : HUNG;
  return {
    name, type: "STATIC", connect_timeout: "0.25s",
    typed_extension_protocol_options: { "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": typed("envoy.extensions.upstreams.http.v3.HttpProtocolOptions", { explicit_http_config: { http2_protocol_options: {} } }) },
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: socket(target.ip, target.port) } }] }] },
    ...(c.cluster === "plain" ? {} : { common_lb_config: { healthy_panic_threshold: { value: 0 } } }),
    ...(c.tls ? { transport_socket: { name: "envoy.transport_sockets.tls", typed_config: typed("envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext", { common_tls_context: { validation_context: {} } }) } } : {}),
    ...(c.cluster === "health-checked" ? { health_checks: [{ timeout: "1s", interval: "1s", no_traffic_interval: "1s", unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} }] } : {}),
    ...(c.cluster !== "plain" ? { outlier_detection: { split_external_local_origin_errors: true, consecutive_local_origin_failure: 1, enforcing_consecutive_local_origin_failure: 100, base_ejection_time: "1s", max_ejection_percent: 100 } } : {}),
  };
}

function listener(i: number, c: Case): Record<string, unknown> {
  const fullDuplex = c.bodyMode === "FULL_DUPLEX_STREAMED";
  return {
    name: `case-${i}`, address: socket("127.0.0.1", 0),
    filter_chains: [{ filters: [{ name: "envoy.filters.network.http_connection_manager", typed_config: typed("envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", {
      stat_prefix: `case-${i}`,
      route_config: { virtual_hosts: [{ name: "all", domains: ["*"], routes: [{ match: { prefix: "/" }, route: { cluster: "backend" } }] }] },
      http_filters: [
        { name: "envoy.filters.http.ext_proc", typed_config: typed("envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor", {
          grpc_service: { envoy_grpc: { cluster_name: `processor-${i}` }, timeout: "2s" },
          processing_mode: { request_header_mode: "SEND", response_header_mode: "SKIP", request_body_mode: c.bodyMode, request_trailer_mode: fullDuplex ? "SEND" : "SKIP" },
          failure_mode_allow: true, message_timeout: "1s", status_on_error: { code: 503 },
        }) },
        { name: "envoy.filters.http.router", typed_config: typed("envoy.extensions.filters.http.router.v3.Router") },
      ],
    }) }] }],
  };
}

async function main(): Promise<void> {
  const backend = createHttpServer((req, res) => {
    let n = 0;
    req.on("data", (c: Buffer) => (n += c.length)).on("end", () => { res.setHeader("x-body-bytes", String(n)); res.end("ok"); });
  });
  await new Promise<void>((r) => backend.listen(BACKEND.port, BACKEND.ip, r));
  const hung = createTcpServer(() => undefined); // accepts, never speaks HTTP/2
  await new Promise<void>((r) => hung.listen(HUNG.port, HUNG.ip, r));
  const envoy = await EnvoyProcess.start({ concurrency: 1, logLevel: "error", bootstrap: {
    admin: { address: socket("127.0.0.1", 0) },
    static_resources: {
      listeners: CASES.map((c, i) => listener(i, c)),
      clusters: [
        { name: "backend", type: "STATIC", connect_timeout: "1s", load_assignment: { cluster_name: "backend", endpoints: [{ lb_endpoints: [{ endpoint: { address: socket(BACKEND.ip, BACKEND.port) } }] }] } },
        ...CASES.map((c, i) => processorCluster(`processor-${i}`, c)),
      ],
    },
  } });
  try {
    await new Promise((r) => setTimeout(r, 2500)); // the first health checks
    const addresses = await envoy.listenerAddresses();
    console.log("| case | GET | POST 100 B | POST 200 KB |\n|---|---|---|---|");
    for (const [i, c] of CASES.entries()) {
      const cells: string[] = [];
      for (const size of [0, 100, 200_000]) {
        const started = performance.now();
        try {
          const res = await fetch(`http://${addresses.get(`case-${i}`)}/`, { signal: AbortSignal.timeout(5000), ...(size ? { method: "POST", body: "x".repeat(size) } : {}) });
          await res.text();
          const bytes = res.headers.get("x-body-bytes");
          cells.push(`${res.status}${bytes !== null ? ` (backend got ${bytes} B)` : ""}, ${(performance.now() - started).toFixed(0)} ms`);
        } catch {
          cells.push("no answer in 5 s");
        }
      }
      console.log(`| ${c.name} | ${cells.join(" | ")} |`);
    }
  } finally {
    await envoy.stop();
    backend.close();
    hung.close();
  }
}

if (process.argv[1]?.endsWith("ext-proc-failure.ts")) void main().then(() => process.exit(0));
