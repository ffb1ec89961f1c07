#!/usr/bin/env bash
# Builds Envoy Gateway (pinned) from its Go module, fetched through the Go module proxy, into the
# git-ignored .cache/ folder, and prints the binary's path. Used only by the end-to-end test that
# runs Envoy Gateway in standalone mode; nothing of it is committed.
set -euo pipefail
EG_VERSION="${EG_VERSION:-v1.9.0}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="$repo/.cache/envoy-gateway/$EG_VERSION/envoy-gateway"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
. "$repo/scripts/go-module.sh"
go_module_env "$repo"
src="$(module_dir github.com/envoyproxy/gateway "$EG_VERSION")"
mkdir -p "$(dirname "$bin")"
# Build inside the module so its go.mod (and any replace directives) applies.
(cd "$src" && go build -trimpath -o "$bin" ./cmd/envoy-gateway) >&2
echo "$bin"
