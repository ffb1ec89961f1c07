// Loads the protobuf types this server speaks. Envoy's API protos come from the vendored copies in
// @grpc/grpc-js-xds; our own additions live in proto/ (Envoy Gateway's extension service, and the
// parts of Envoy's API newer than the vendored snapshot, grafted into place here).
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";

const require = createRequire(import.meta.url);
const xdsDeps = join(dirname(require.resolve("@grpc/grpc-js-xds/package.json")), "deps");
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const repoProtoDir = join(repoRoot, "proto");

const INCLUDE_DIRS = [
  repoProtoDir,
  // Envoy Gateway's protos import "proto/extension/context.proto": the repository root is a root.
  repoRoot,
  join(xdsDeps, "envoy-api"),
  join(xdsDeps, "xds"),
  join(xdsDeps, "googleapis"),
  join(xdsDeps, "protoc-gen-validate"),
  // google/protobuf/descriptor.proto and friends, which the annotations import.
  dirname(require.resolve("protobufjs/package.json")),
];

const FILES = [
  "envoy/service/discovery/v3/discovery.proto",
  "envoy/config/core/v3/extension.proto",
  "envoy/config/endpoint/v3/endpoint.proto",
  "envoy/extensions/filters/http/wasm/v3/wasm.proto",
  "google/protobuf/wrappers.proto",
  "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
  "envoy/extensions/filters/http/router/v3/router.proto",
  "envoy/extensions/http/early_header_mutation/header_mutation/v3/header_mutation.proto",
  "envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto",
  "envoy/config/cluster/v3/cluster.proto",
  "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
  "envoy/config/listener/v3/listener.proto",
  "envoy/extensions/filters/http/ext_proc/v3/ext_proc.proto",
  "envoy/extensions/transport_sockets/tls/v3/tls.proto",
  "infergate/envoy_newer.proto",
  "infergate/load.proto",
  // Envoy Gateway's extension service (our copy, written from the public definition).
  "proto/extension/service.proto",
];

const NEWER = "infergate.newer";
/** Types of proto/infergate/envoy_newer.proto that move to their upstream package. */
const NEWER_TYPES: Array<[string, string]> = [
  ["FailurePolicy", "envoy.extensions.wasm.v3"],
  ["OverrideHost", "envoy.extensions.load_balancing_policies.override_host.v3"],
];
/** Messages of that file whose fields join an upstream message. */
const NEWER_FIELDS: Array<[string, string]> = [
  ["PluginConfigFields", "envoy.extensions.wasm.v3.PluginConfig"],
  ["ExternalProcessorFields", "envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor"],
  ["ExtProcOverridesFields", "envoy.extensions.filters.http.ext_proc.v3.ExtProcOverrides"],
];
/** Enum values newer than the vendored snapshot, with upstream's numbers. */
const NEWER_ENUM_VALUES: Array<[string, string, number]> = [
  // ext_proc's body mode the endpoint picker protocol requires (Envoy 1.32+).
  ["envoy.extensions.filters.http.ext_proc.v3.ProcessingMode.BodySendMode", "FULL_DUPLEX_STREAMED", 4],
];

function graftNewer(root: protobuf.Root): void {
  const newer = root.lookup(NEWER) as protobuf.Namespace;
  for (const [name, pkg] of NEWER_TYPES) {
    const type = newer.get(name)!;
    newer.remove(type);
    root.define(pkg).add(type);
  }
  for (const [name, target] of NEWER_FIELDS) {
    const source = newer.get(name) as protobuf.Type;
    const into = root.lookupType(target);
    for (const f of source.fieldsArray) {
      if (into.fieldsById[f.id]) throw new Error(`${target} already has field ${f.id}: drop it from envoy_newer.proto`);
      into.add(new protobuf.Field(f.name, f.id, f.type, f.repeated ? "repeated" : undefined));
    }
    newer.remove(source);
  }
  for (const [name, value, id] of NEWER_ENUM_VALUES) {
    const e = root.lookupEnum(name);
    if (e.values[value] === undefined) e.add(value, id);
  }
}

function loadRoot(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    for (const dir of INCLUDE_DIRS) {
      const candidate = join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    return protobuf.util.path.resolve(origin, target);
  };
  root.loadSync(FILES, { keepCase: true });
  graftNewer(root);
  root.resolveAll();
  return root;
}

let shared: protobuf.Root | undefined;
/** The process-wide root with every type the server needs. */
export function protoRoot(): protobuf.Root {
  shared ??= loadRoot();
  return shared;
}

export function typeUrl(fullName: string): string {
  return `type.googleapis.com/${fullName}`;
}

/** The field numbers of `names` in a message type, checked against the loaded protos. */
export function fieldNumbers<K extends string>(typeName: string, names: readonly K[]): Record<K, number> {
  const type = protoRoot().lookupType(typeName);
  const out = {} as Record<K, number>;
  for (const name of names) {
    const field = type.fields[name];
    if (!field) throw new Error(`${typeName} has no field ${name}`);
    out[name] = field.id;
  }
  return out;
}
