#!/usr/bin/env bash
# Prints what the Helm chart's end-to-end test (test/e2e/helm.test.ts) needs besides Helm, from Go
# modules fetched through the Go module proxy into the git-ignored .cache/ (nothing is committed):
#   line 1: the Prometheus Operator's CRDs (ServiceMonitor, PrometheusRule), example/prometheus-operator-crd
#   line 2: Envoy Gateway's module (its Helm chart, charts/gateway-helm, and its CRDs, e.g. EnvoyExtensionPolicy)
set -euo pipefail
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
EG_VERSION="${EG_VERSION:-v1.9.0}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
. "$repo/scripts/go-module.sh"
go_module_env "$repo"
mkdir -p "$repo/.cache" && cd "$repo/.cache"
po="$(module_dir github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR_VERSION")/example/prometheus-operator-crd"
eg="$(module_dir github.com/envoyproxy/gateway "$EG_VERSION")"
for f in "$po/monitoring.coreos.com_servicemonitors.yaml" "$po/monitoring.coreos.com_prometheusrules.yaml" \
  "$eg/charts/gateway-helm/values.tmpl.yaml" "$eg/charts/gateway-helm/charts/crds/crds/generated/gateway.envoyproxy.io_envoyextensionpolicies.yaml"; do
  [ -f "$f" ] || { echo "chart-test-deps: missing $f" >&2; exit 1; }
done
echo "$po"
echo "$eg"
