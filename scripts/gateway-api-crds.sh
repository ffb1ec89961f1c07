#!/usr/bin/env bash
# Prints the directory of the Gateway API's standard CRDs (HTTPRoute and ReferenceGrant among
# them), from the Gateway API module that the pinned Envoy Gateway depends on, fetched through the
# Go module proxy into the git-ignored .cache/ (nothing of it is committed). The kube-apiserver
# test installs the HTTPRoute and ReferenceGrant CRDs from there.
set -euo pipefail
EG_VERSION="${EG_VERSION:-v1.9.0}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
export GOPATH="$repo/.cache/go" GOMODCACHE="$repo/.cache/go/mod" GOCACHE="$repo/.cache/go/build" GOFLAGS=-mod=mod
mkdir -p "$repo/.cache" && cd "$repo/.cache"
module_dir() { go mod download -json "$1@$2" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'; }
eg="$(module_dir github.com/envoyproxy/gateway "$EG_VERSION")"
version="$(sed -n 's/^[[:space:]]*sigs.k8s.io\/gateway-api \(v[^ ]*\).*/\1/p' "$eg/go.mod" | head -1)"
dir="$(module_dir sigs.k8s.io/gateway-api "$version")/config/crd/standard"
for kind in httproutes referencegrants; do
  [ -f "$dir/gateway.networking.k8s.io_$kind.yaml" ] || { echo "no $kind CRD in $dir" >&2; exit 1; }
done
echo "$dir"
