#!/usr/bin/env bash
# Builds kube-apiserver and etcd (pinned) from their Go modules through the module proxy into the
# git-ignored .cache/, for testing the Kubernetes source against a real API server. Both modules'
# go.mod files replace sibling modules with relative paths (kubernetes: ./staging/src/k8s.io/*,
# etcd server: ../api, ../pkg, ...) that module zips leave out; those directories are filled in
# from the same modules as published on their own. Prints the two binaries' paths.
set -euo pipefail
KUBE_VERSION="${KUBE_VERSION:-v1.34.1}"
STAGING_VERSION="v0.${KUBE_VERSION#v1.}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.5}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
root="$repo/.cache/kube"
bin="$root/bin"
. "$repo/scripts/go-module.sh"
go_module_env "$repo"
# Build in a scratch directory that no outer go.mod or go.work governs.
mkdir -p "$repo/.cache" && cd "$repo/.cache"
mkdir -p "$bin"


# Copies a module into a writable tree. With `optional`, a module that is not published becomes a
# bare go.mod (some staging directories are never imported by kube-apiserver).
place() {
  local module="$1" version="$2" dest="$3" optional="${4:-}" dir
  mkdir -p "$dest"
  if dir="$(module_dir "$module" "$version")"; then
    cp -r "$dir/." "$dest/"
    chmod -R u+w "$dest"
  elif [ "$optional" = optional ]; then
    echo "module $module" > "$dest/go.mod"
  else
    exit 1
  fi
}

if [ ! -x "$bin/etcd" ]; then
  src="$root/etcd-$ETCD_VERSION"
  rm -rf "$src"
  place go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$src/server"
  place go.etcd.io/etcd/api/v3 "$ETCD_VERSION" "$src/api"
  place go.etcd.io/etcd/client/pkg/v3 "$ETCD_VERSION" "$src/client/pkg"
  place go.etcd.io/etcd/client/v3 "$ETCD_VERSION" "$src/client/v3"
  place go.etcd.io/etcd/pkg/v3 "$ETCD_VERSION" "$src/pkg"
  (cd "$src/server" && go build -trimpath -o "$bin/etcd" .) >&2
fi

if [ ! -x "$bin/kube-apiserver" ]; then
  src="$root/kubernetes-$KUBE_VERSION"
  rm -rf "$src"
  place k8s.io/kubernetes "$KUBE_VERSION" "$src"
  for name in $(sed -n 's#^\s*k8s.io/\([a-z-]*\) => ./staging/src/k8s.io/.*#\1#p' "$src/go.mod"); do
    place "k8s.io/$name" "$STAGING_VERSION" "$src/staging/src/k8s.io/$name" optional
  done
  # The module carries a go.work for its staging tree; build from go.mod and its replaces instead.
  (cd "$src" && GOWORK=off go build -trimpath -o "$bin/kube-apiserver" ./cmd/kube-apiserver) >&2
fi
echo "$bin/kube-apiserver"
echo "$bin/etcd"
