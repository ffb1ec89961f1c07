// Builds the resources the xDS server pushes: the infergate Wasm filter configuration (ECDS) and
// the pools' load assignments (EDS).
import { protoRoot, typeUrl } from "./protos.ts";
import type { EncodedResource } from "./server.ts";

export const FILTER_CONFIG_NAME = "infergate";
export const WASM_TYPE_URL = typeUrl("envoy.extensions.filters.http.wasm.v3.Wasm");

export interface WasmFilterOptions {
  /** Path of the compiled filter module on the Envoy host. */
  wasmPath: string;
  /** Or: fetch the module over HTTP (Envoy Gateway's Envoys run elsewhere) through `cluster`. */
  remote?: { uri: string; cluster: string; sha256: string } | undefined;
  /** The routing snapshot text (filter/src/core/snapshot.ts documents the format). */
  snapshot: string;
}

/** The Wasm filter configuration as Envoy's JSON/YAML form (used in the generated bootstrap). */
export function wasmFilterJson(opts: WasmFilterOptions): Record<string, unknown> {
  return {
    "@type": WASM_TYPE_URL,
    config: {
      name: FILTER_CONFIG_NAME,
      root_id: FILTER_CONFIG_NAME,
      // The VM is reused across configuration pushes as long as vm_config is unchanged: only the
      // snapshot (plugin configuration) changes on each push, so no module is recompiled.
      vm_config: { vm_id: FILTER_CONFIG_NAME, runtime: "envoy.wasm.runtime.v8", code: wasmCode(opts, "10s") },
      configuration: { "@type": typeUrl("google.protobuf.StringValue"), value: opts.snapshot },
      // A VM that traps is replaced for the next request rather than failing every later one.
      failure_policy: "FAIL_RELOAD",
      allow_on_headers_stop_iteration: true,
    },
  };
}

/** VmConfig.code: the local file, or the module fetched over HTTP. `timeout` is written as Envoy's
 * JSON wants it ("10s") or as protobufjs wants it ({seconds: 10}). */
function wasmCode(opts: WasmFilterOptions, timeout: unknown): Record<string, unknown> {
  if (!opts.remote) return { local: { filename: opts.wasmPath } };
  return {
    remote: { http_uri: { uri: opts.remote.uri, cluster: opts.remote.cluster, timeout }, sha256: opts.remote.sha256 },
  };
}

/** The same configuration, binary-encoded for ECDS. */
export function encodeWasmFilter(opts: WasmFilterOptions): Uint8Array {
  const root = protoRoot();
  const Wasm = root.lookupType("envoy.extensions.filters.http.wasm.v3.Wasm");
  const StringValue = root.lookupType("google.protobuf.StringValue");
  const Overlay = root.lookupType("infergate.overlay.WasmOverlay");
  const json = wasmFilterJson(opts).config as Record<string, unknown>;
  const base = Wasm.encode(Wasm.fromObject({
    config: {
      name: json.name,
      root_id: json.root_id,
      vm_config: { ...(json.vm_config as object), code: wasmCode(opts, { seconds: 10 }) },
      configuration: { type_url: typeUrl("google.protobuf.StringValue"), value: StringValue.encode({ value: opts.snapshot }).finish() },
    },
  })).finish();
  // Appended encodings of the same singular message field merge (see proto/infergate/wasm_plugin_overlay.proto).
  const overlay = Overlay.encode(Overlay.fromObject({ config: { failure_policy: "FAIL_RELOAD", allow_on_headers_stop_iteration: { value: true } } })).finish();
  return concat(base, overlay);
}

export function extensionConfigResource(name: string, typedConfigUrl: string, value: Uint8Array): EncodedResource {
  const TypedExtensionConfig = protoRoot().lookupType("envoy.config.core.v3.TypedExtensionConfig");
  const bytes = TypedExtensionConfig.encode(TypedExtensionConfig.fromObject({
    name,
    typed_config: { type_url: typedConfigUrl, value },
  })).finish();
  return { name, any: { type_url: typeUrl("envoy.config.core.v3.TypedExtensionConfig"), value: bytes } };
}

export function loadAssignmentResource(clusterName: string, addresses: Array<{ ip: string; port: number }>): EncodedResource {
  const ClusterLoadAssignment = protoRoot().lookupType("envoy.config.endpoint.v3.ClusterLoadAssignment");
  const bytes = ClusterLoadAssignment.encode(ClusterLoadAssignment.fromObject({
    cluster_name: clusterName,
    endpoints: [{
      lb_endpoints: addresses.map(({ ip, port }) => ({
        endpoint: { address: { socket_address: { address: ip, port_value: port } } },
      })),
    }],
  })).finish();
  return { name: clusterName, any: { type_url: typeUrl("envoy.config.endpoint.v3.ClusterLoadAssignment"), value: bytes } };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
