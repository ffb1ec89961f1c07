#!/usr/bin/env bash
# Builds Helm (pinned: the version Envoy Gateway v1.9.0's own go.mod requires) from its Go module
# through the Go module proxy into the git-ignored .cache/, for the chart's tests (helm lint,
# template, and install/upgrade/uninstall against the real kube-apiserver). Prints the binary's
# path. Nothing of it is committed.
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.21.3}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="$repo/.cache/helm/$HELM_VERSION/helm"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
. "$repo/scripts/go-module.sh"
go_module_env "$repo"
# Work in a scratch directory that no outer go.mod or go.work governs.
mkdir -p "$repo/.cache" && cd "$repo/.cache"
src="$(module_dir helm.sh/helm/v3 "$HELM_VERSION")"
mkdir -p "$(dirname "$bin")"
# The linker flags of Helm's Makefile: its version, and the Kubernetes version `helm template` and
# `helm lint` assume without a cluster, from the client-go it is built with (v0.36.2: 1.36), not
# the fallback 1.20 (which a chart's kubeVersion constraint would refuse).
k8s="$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$src/go.mod")"
[ -n "$k8s" ] || { echo "build-helm: no k8s.io/client-go in $src/go.mod" >&2; exit 1; }
ldflags="-w -s -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in pkg/lint/rules pkg/chartutil; do
  ldflags="$ldflags -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$k8s"
done
# Build inside the module so its go.mod applies; its dependencies come through the proxy (retried).
ok=
for attempt in 1 2 3; do
  if (cd "$src" && GOWORK=off go build -trimpath -ldflags "$ldflags" -o "$bin.tmp" ./cmd/helm) >&2; then ok=1; break; fi
  sleep "$attempt"
done
[ -n "$ok" ] || { echo "build-helm: go build ./cmd/helm failed" >&2; exit 1; }
mv "$bin.tmp" "$bin"
echo "$bin"
