// Loads the protobuf types this server speaks. Envoy's API protos come from the vendored copies in
// @grpc/grpc-js-xds; our own additions live in proto/.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";

const require = createRequire(import.meta.url);
const xdsDeps = join(dirname(require.resolve("@grpc/grpc-js-xds/package.json")), "deps");
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const repoProtoDir = join(repoRoot, "proto");

export const INCLUDE_DIRS = [
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
  "infergate/wasm_plugin_overlay.proto",
  "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
  "envoy/config/cluster/v3/cluster.proto",
  "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
  "envoy/config/listener/v3/listener.proto",
  // Envoy Gateway's extension service (our copy, written from the public definition).
  "proto/extension/service.proto",
];

export function loadRoot(files: string[] = FILES): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    for (const dir of INCLUDE_DIRS) {
      const candidate = join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    return protobuf.util.path.resolve(origin, target);
  };
  root.loadSync(files, { keepCase: true });
  root.resolveAll();
  return root;
}

let shared: protobuf.Root | undefined;
/** The process-wide root with every type the xDS server needs. */
export function protoRoot(): protobuf.Root {
  shared ??= loadRoot();
  return shared;
}

export function typeUrl(fullName: string): string {
  return `type.googleapis.com/${fullName}`;
}
