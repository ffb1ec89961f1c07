// The peer: the Gateway API Inference Extension's endpoint picker (EPP) v1.5.0, built from its own
// Go module (scripts/build-epp.sh), running as it is deployed, behind a real Envoy that calls it
// per request over ext_proc. bench/peers/EPP.md describes the configuration and why.
//
//   const peer = await startGieEpp({ replicas: ["127.0.8.1:8000", "127.0.8.2:8000"] });
//   await fetch(`${peer.url}/v1/completions`, { method: "POST", body: ... });   // the EPP picks
//   await fetch(`${peer.plainUrl}/v1/completions`, ...);                          // Envoy round robin
//   await peer.stop();
//
// startEpp() is the same stack without the Envoy (steps 1-4): for a gateway of one's own, such as
// infergate's (test/e2e/epp-protocol.test.ts), pointed at `grpcPort`.
//
// What it brings up, all on loopback (the EPP binds its ports on every interface, so run it in a
// private network namespace when anything else might use them):
//   1. etcd + kube-apiserver (test/support/kube-apiserver.ts);
//   2. the module's CRDs: InferencePool (inference.networking.k8s.io/v1), InferenceObjective and
//      InferenceModelRewrite (inference.networking.x-k8s.io/v1alpha2), read from the module cache;
//   3. a namespace, one Pod per replica (status podIP / Running / Ready set through the status
//      subresource, as a kubelet would) and an InferencePool selecting them;
//   4. the EPP, pointed at that pool with the flags and plugin configuration of the module's own
//      Helm chart (config/charts/inferencepool + epplib), TLS on as by default;
//   5. Envoy with two listeners: `url` runs envoy.filters.http.ext_proc to the EPP and routes to
//      the endpoint the EPP names in `x-gateway-destination-endpoint` through an ORIGINAL_DST
//      cluster, as the module's reference Envoy configuration (test/testdata/envoy.yaml) does;
//      `plainUrl` is the same replicas behind plain round robin, no ext_proc.
// Every step is bounded in time; stop() kills every process and removes every temporary file.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { EnvoyProcess } from "../../extension-server/src/envoy/process.ts";
import { freePort, startKubeApiServer, type KubeApiServer } from "../../test/support/kube-apiserver.ts";
import { scratchDir } from "../../test/support/scratch-dir.ts";

const repo = new URL("../..", import.meta.url).pathname;
export const EPP_VERSION = "v1.5.0";
const MODULE = "sigs.k8s.io/gateway-api-inference-extension";

export interface GieEppOptions {
  /** The model-server replicas as "ip:port". All share one port: an InferencePool's targetPorts
   * apply to every Pod it selects. The EPP routes any `model` to the pool (v1.5.0 needs no
   * per-model object), so no model list is needed. */
  replicas: string[];
  /** Kubernetes namespace and InferencePool name (default "gie" and "gie-pool"). */
  namespace?: string;
  poolName?: string;
  /** Envoy worker threads (default 2, as infergate's standalone Envoy in the benchmark). */
  envoyConcurrency?: number;
  /** The EPP's ext_proc TLS (self-signed certificate, not verified by Envoy, as in the reference
   * configuration). Default true, v1.5.0's default; false adds `--secure-serving=false`. */
  secureServing?: boolean;
  /** Envoy's ext_proc `failure_mode_allow` (default false, as the reference configuration): true
   * lets requests through, unrouted by the EPP, when it cannot be reached. */
  failureModeAllow?: boolean;
  /** Whether response bodies go through the EPP, FULL_DUPLEX_STREAMED as in the reference
   * (default true). The default scheduler reads nothing from them; false keeps the response
   * headers phase and skips the body (bench/peers/epp-fidelity.ts, where streamed tokens arrive
   * at the time scale's multiple of the real rate). */
  responseBody?: boolean;
  /** Extra EPP flags, appended last (e.g. ["--v=4"]). */
  eppArgs?: string[];
  /** The EndpointPickerConfig the EPP reads (default CHART_DEFAULT_PLUGINS). */
  eppConfig?: string;
  /** Receives every log line of the EPP (JSON), Envoy and the API server. */
  log?: (line: string) => void;
  /** Start-up budget for the whole stack, default 120 s. */
  timeoutMs?: number;
}

/** The EPP and its API server, without a gateway (startEpp). */
export interface Epp {
  /** The EPP's ext_proc port on 127.0.0.1 (TLS unless secureServing is false). */
  readonly grpcPort: number;
  /** The EPP's Prometheus endpoint (metrics-endpoint-auth off). */
  readonly eppMetricsUrl: string;
  /** The EPP's command line and the EndpointPickerConfig file it reads. */
  readonly eppCommand: string[];
  readonly eppConfig: string;
  /** The API server, e.g. to change a Pod. */
  readonly kube: KubeApiServer;
  /** The EPP's recent log lines (JSON, --v=1 as the chart sets). */
  eppLogs(): string[];
  /** Waiting-queue size per Pod as the EPP last scraped it (inference_pool_per_pod_queue_size). */
  eppQueueSizes(): Promise<Map<string, number>>;
  /** Stops only the EPP (to see what Envoy does without it). */
  stopEpp(): Promise<void>;
  /** Starts the EPP again after stopEpp(), on the same ports, and waits until it lists every Pod. */
  restartEpp(): Promise<void>;
  stop(): Promise<void>;
}

export interface GieEpp extends Epp {
  /** Envoy's EPP route: http://127.0.0.1:<port>; POST /v1/completions or /v1/chat/completions. */
  readonly url: string;
  /** The same Envoy and replicas by round robin, without ext_proc (the overhead baseline). */
  readonly plainUrl: string;
  readonly envoyAdminUrl: string;
}

/** EPP_BIN and EPP_MODULE_DIR (scripts/test-e2e.sh sets them before entering its network
 * namespace, where nothing can be downloaded), else built or found by scripts/build-epp.sh. */
export function eppBinaries(): { bin: string; moduleDir: string } {
  if (process.env.EPP_BIN) {
    return { bin: process.env.EPP_BIN, moduleDir: process.env.EPP_MODULE_DIR ?? join(repo, ".cache", "go", "mod", `${MODULE}@${EPP_VERSION}`) };
  }
  const [bin, moduleDir] = execFileSync("bash", [join(repo, "scripts/build-epp.sh")], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim().split("\n");
  return { bin: bin!, moduleDir: moduleDir! };
}

/** The EndpointPickerConfig that v1.5.0's Helm chart renders for a vLLM pool with default values
 * (config/charts/epplib/templates/_config.yaml). It equals the built-in default
 * (pkg/epp/config/loader/defaults.go); the EPP logs the effective result at start-up. */
export const CHART_DEFAULT_PLUGINS = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
- type: metrics-data-source
  parameters:
    scheme: "http"
    path: "/metrics"
    insecureSkipVerify: true
- type: core-metrics-extractor
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 2
  - pluginRef: prefix-cache-scorer
    weight: 3
`;

const CRD_FILES = [
  "inference.networking.k8s.io_inferencepools.yaml",
  "inference.networking.x-k8s.io_inferenceobjectives.yaml",
  "inference.networking.x-k8s.io_inferencemodelrewrites.yaml",
];

const typed = (type: string, body: Record<string, unknown> = {}): Record<string, unknown> => ({ "@type": `type.googleapis.com/${type}`, ...body });
const socket = (address: string, port: number) => ({ socket_address: { address, port_value: port } });
const CIRCUIT_BREAKERS = { thresholds: [{ max_connections: 40000, max_pending_requests: 40000, max_requests: 40000 }] };

function listener(name: string, cluster: string, httpFilters: unknown[]): Record<string, unknown> {
  return {
    name,
    address: socket("127.0.0.1", 0),
    // As the reference; both listeners alike, so the comparison isolates ext_proc.
    per_connection_buffer_limit_bytes: 32768,
    filter_chains: [{
      filters: [{
        name: "envoy.filters.network.http_connection_manager",
        typed_config: typed("envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", {
          stat_prefix: name,
          route_config: {
            name,
            virtual_hosts: [{ name, domains: ["*"], routes: [{ match: { prefix: "/" }, route: { cluster, timeout: "86400s", idle_timeout: "86400s" } }] }],
          },
          http_filters: [...httpFilters, { name: "envoy.filters.http.router", typed_config: typed("envoy.extensions.filters.http.router.v3.Router", { suppress_envoy_headers: true }) }],
        }),
      }],
    }],
  };
}

/** The Envoy bootstrap. The ext_proc filter, its processing mode and timeouts, the ORIGINAL_DST
 * cluster keyed by `x-gateway-destination-endpoint`, and the ext_proc cluster's HTTP/2 + TLS without
 * verification are those of the module's reference configuration (test/testdata/envoy.yaml).
 * Left out: its grpc health check (the EPP does not register the health service on the ext_proc
 * port unless --health-checking is set), access logs, and listener options unrelated to routing. */
export function gieEnvoyBootstrap(o: { replicas: string[]; eppGrpcPort: number; secureServing: boolean; failureModeAllow?: boolean; responseBody?: boolean }): Record<string, unknown> {
  const extProc = {
    name: "envoy.filters.http.ext_proc",
    typed_config: typed("envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor", {
      grpc_service: { envoy_grpc: { cluster_name: "ext_proc", authority: `epp:${o.eppGrpcPort}` }, timeout: "10s" },
      processing_mode: {
        request_header_mode: "SEND", response_header_mode: "SEND",
        request_body_mode: "FULL_DUPLEX_STREAMED", response_body_mode: o.responseBody === false ? "NONE" : "FULL_DUPLEX_STREAMED",
        request_trailer_mode: "SEND", response_trailer_mode: "SEND",
      },
      message_timeout: "1000s",
      ...(o.failureModeAllow ? { failure_mode_allow: true } : {}),
    }),
  };
  return {
    admin: { address: socket("127.0.0.1", 0) },
    static_resources: {
      listeners: [listener("gie-epp", "original_destination_cluster", [extProc]), listener("plain", "plain_round_robin", [])],
      clusters: [
        {
          name: "original_destination_cluster",
          type: "ORIGINAL_DST",
          connect_timeout: "1000s",
          lb_policy: "CLUSTER_PROVIDED",
          circuit_breakers: CIRCUIT_BREAKERS,
          original_dst_lb_config: { use_http_header: true, http_header_name: "x-gateway-destination-endpoint" },
        },
        {
          name: "plain_round_robin",
          type: "STATIC",
          connect_timeout: "10s",
          lb_policy: "ROUND_ROBIN",
          circuit_breakers: CIRCUIT_BREAKERS,
          load_assignment: {
            cluster_name: "plain_round_robin",
            endpoints: [{ lb_endpoints: o.replicas.map((r) => { const [ip, port] = r.split(":"); return { endpoint: { address: socket(ip!, Number(port)) } }; }) }],
          },
        },
        {
          name: "ext_proc",
          type: "STATIC",
          connect_timeout: "10s",
          lb_policy: "LEAST_REQUEST",
          circuit_breakers: { thresholds: [{ max_connections: 40000, max_pending_requests: 40000, max_requests: 40000, max_retries: 1024 }] },
          ...(o.secureServing ? {
            transport_socket: {
              name: "envoy.transport_sockets.tls",
              // An empty validation context accepts the EPP's self-signed certificate (as the reference).
              typed_config: typed("envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext", { common_tls_context: { validation_context: {} } }),
            },
          } : {}),
          typed_extension_protocol_options: {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": typed("envoy.extensions.upstreams.http.v3.HttpProtocolOptions", {
              explicit_http_config: { http2_protocol_options: { initial_stream_window_size: 65536, initial_connection_window_size: 1048576 } },
            }),
          },
          load_assignment: { cluster_name: "ext_proc", endpoints: [{ lb_endpoints: [{ endpoint: { address: socket("127.0.0.1", o.eppGrpcPort) } }] }] },
        },
      ],
    },
  };
}

async function within<T>(what: string, deadline: number, poll: () => Promise<T | undefined>, intervalMs = 200): Promise<T> {
  while (Date.now() < deadline) {
    const value = await poll().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function killGroup(child: ChildProcess | undefined, graceMs = 3000): Promise<void> {
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => { clearTimeout(timer); resolve(); });
    const timer = setTimeout(() => { try { process.kill(-child.pid!, "SIGKILL"); } catch { resolve(); } }, graceMs);
    try { process.kill(-child.pid!, "SIGTERM"); } catch { clearTimeout(timer); resolve(); }
  });
}

/** Steps 1-4: the API server with the pool and its Pods, and the EPP, waiting until the EPP has
 * scraped every Pod. */
export async function startEpp(opts: GieEppOptions): Promise<Epp> {
  if (opts.replicas.length === 0) throw new Error("startEpp: no replicas");
  const ports = new Set(opts.replicas.map((r) => r.split(":")[1]));
  if (ports.size !== 1) throw new Error(`startGieEpp: replicas must share one port (an InferencePool's targetPorts), got ${[...ports].join(", ")}`);
  const targetPort = Number([...ports][0]);
  const namespace = opts.namespace ?? "gie";
  const poolName = opts.poolName ?? "gie-pool";
  const secureServing = opts.secureServing ?? true;
  const log = opts.log ?? (() => undefined);
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  const { bin, moduleDir } = eppBinaries();
  const dir = scratchDir("infergate-gie-epp");
  const eppLines: string[] = [];
  let kube: KubeApiServer | undefined;
  let epp: ChildProcess | undefined;
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await killGroup(epp);
    await kube?.stop();
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    kube = await startKubeApiServer({ timeoutMs: Math.max(5000, deadline - Date.now()) });
    for (const line of kube.logs) log(line);
    const crds = CRD_FILES.flatMap((f) => parseAllDocuments(readFileSync(join(moduleDir, "config", "crd", "bases", f), "utf8")).map((d) => d.toJS() as Record<string, any>));
    await kube.installCrds(crds, Math.max(1000, deadline - Date.now()));

    const ok = async (what: string, r: Promise<{ status: number; text: string }>): Promise<void> => {
      const { status, text } = await r;
      if (status < 200 || status >= 300) throw new Error(`${what}: HTTP ${status}: ${text}`);
    };
    await ok("namespace", kube.raw("POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } }));
    for (const [i, replica] of opts.replicas.entries()) {
      const ip = replica.split(":")[0]!;
      const name = `${poolName}-${i}`;
      await ok(`pod ${name}`, kube.raw("POST", `/api/v1/namespaces/${namespace}/pods`, {
        apiVersion: "v1", kind: "Pod",
        metadata: { name, labels: { app: poolName, "inference.networking.k8s.io/engine-type": "vllm" } },
        spec: { containers: [{ name: "model-server", image: "infergate/sim", ports: [{ containerPort: targetPort, name: "http" }] }] },
      }));
      // What a kubelet would report for a started, ready Pod.
      const now = new Date().toISOString();
      await ok(`pod ${name} status`, kube.raw("PATCH", `/api/v1/namespaces/${namespace}/pods/${name}/status`, {
        status: { phase: "Running", podIP: ip, podIPs: [{ ip }], hostIP: "127.0.0.1", startTime: now,
          conditions: [{ type: "Ready", status: "True", lastTransitionTime: now }, { type: "ContainersReady", status: "True", lastTransitionTime: now }] },
      }, "application/merge-patch+json"));
    }
    const [grpcPort, healthPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
    await ok("InferencePool", kube.raw("POST", `/apis/inference.networking.k8s.io/v1/namespaces/${namespace}/inferencepools`, {
      apiVersion: "inference.networking.k8s.io/v1", kind: "InferencePool",
      metadata: { name: poolName, namespace },
      spec: {
        selector: { matchLabels: { app: poolName } },
        targetPorts: [{ number: targetPort }],
        // Read by gateways, not by the EPP; here Envoy is configured by hand.
        endpointPickerRef: { name: `${poolName}-epp`, port: { number: grpcPort }, failureMode: "FailClose" },
      },
    }));

    const configPath = join(dir, "default-plugins.yaml");
    const eppConfig = opts.eppConfig ?? CHART_DEFAULT_PLUGINS;
    writeFileSync(configPath, eppConfig);
    // The chart's arguments (config/charts/epplib/templates/_deployment.yaml with
    // config/charts/inferencepool/values.yaml defaults), plus ports picked free here and
    // metrics-endpoint-auth off so the harness can read the EPP's metrics without RBAC.
    const eppCommand = [bin,
      "--pool-name", poolName, "--pool-namespace", namespace, "--pool-group", "inference.networking.k8s.io",
      "--zap-encoder", "json", "--config-file", configPath, "--v", "1", "--tracing=false",
      "--grpc-port", String(grpcPort), "--grpc-health-port", String(healthPort), "--metrics-port", String(metricsPort),
      "--metrics-endpoint-auth=false",
      ...(secureServing ? [] : ["--secure-serving=false"]),
      ...(opts.eppArgs ?? [])];
    let eppExit: string | undefined;
    const spawnEpp = (): ChildProcess => {
      const child = spawn(eppCommand[0]!, eppCommand.slice(1), { env: { ...process.env, KUBECONFIG: kube!.kubeconfigPath }, stdio: ["ignore", "pipe", "pipe"], detached: true });
      let partial = "";
      const onData = (c: Buffer): void => {
        const lines = (partial + c.toString()).split("\n");
        partial = lines.pop() ?? "";
        for (const line of lines) {
          eppLines.push(line);
          if (eppLines.length > 2000) eppLines.splice(0, 500);
          log(line);
        }
      };
      child.stdout!.on("data", onData);
      child.stderr!.on("data", onData);
      eppExit = undefined;
      child.once("exit", (code, signal) => { eppExit = `EPP exited (${code ?? signal})`; });
      return child;
    };
    epp = spawnEpp();

    const eppMetricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    const eppQueueSizes = async (): Promise<Map<string, number>> => {
      const text = await (await fetch(eppMetricsUrl)).text();
      const out = new Map<string, number>();
      for (const m of text.matchAll(/^inference_pool_per_pod_queue_size\{([^}]*)\} (\S+)$/gm)) {
        const pod = /model_server_pod="([^"]*)"/.exec(m[1]!)?.[1];
        if (pod) out.set(pod, Number(m[2]));
      }
      return out;
    };
    // Every Pod in the EPP's datastore.
    const listed = (by: number): Promise<unknown> => within("the EPP to list every Pod", by, async () => {
      if (eppExit) throw new Error(eppExit);
      return (await eppQueueSizes()).size === opts.replicas.length ? true : undefined;
    }).catch((err) => { throw new Error(`${String(err)}${eppExit ? `: ${eppExit}` : ""}\n${eppLines.slice(-20).join("\n")}`); });
    await listed(deadline);
    return {
      grpcPort, eppMetricsUrl, eppCommand, eppConfig, kube,
      eppLogs: () => [...eppLines], eppQueueSizes, stopEpp: () => killGroup(epp), stop,
      async restartEpp() {
        await killGroup(epp);
        epp = spawnEpp();
        await listed(Date.now() + 60_000);
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

export async function startGieEpp(opts: GieEppOptions): Promise<GieEpp> {
  const secureServing = opts.secureServing ?? true;
  const log = opts.log ?? (() => undefined);
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  const epp = await startEpp(opts);
  const grpcPort = epp.grpcPort;
  let envoy: EnvoyProcess | undefined;
  const stop = async (): Promise<void> => {
    if (envoy) { await envoy.stop(); envoy = undefined; }
    await epp.stop();
  };
  try {
    envoy = await EnvoyProcess.start({
      bootstrap: gieEnvoyBootstrap({ replicas: opts.replicas, eppGrpcPort: grpcPort, secureServing, failureModeAllow: opts.failureModeAllow ?? false, responseBody: opts.responseBody ?? true }),
      concurrency: opts.envoyConcurrency ?? 2, logLevel: "warn", onLog: log,
    });
    const listeners = await envoy.listenerAddresses();
    const url = `http://${listeners.get("gie-epp")}`;
    const plainUrl = `http://${listeners.get("plain")}`;
    // The first request that the EPP routes (it needs the Pods' first scrape, 50 ms apart).
    const probe = JSON.stringify({ model: "probe", prompt: "ready?", max_tokens: 1 });
    await within("a request routed by the EPP", deadline, async () => {
      const res = await fetch(`${url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: probe });
      await res.text();
      return res.headers.get("x-served-by") ? true : undefined;
    }).catch((err) => { throw new Error(`${String(err)}\n${epp.eppLogs().slice(-20).join("\n")}\n${envoy!.logs.slice(-20).join("\n")}`); });

    return {
      url, plainUrl, envoyAdminUrl: `http://${envoy.adminAddress}`, grpcPort, eppMetricsUrl: epp.eppMetricsUrl, eppCommand: epp.eppCommand, eppConfig: epp.eppConfig, kube: epp.kube,
      eppLogs: epp.eppLogs, eppQueueSizes: epp.eppQueueSizes, stopEpp: epp.stopEpp, restartEpp: epp.restartEpp, stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
