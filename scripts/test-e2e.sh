#!/usr/bin/env bash
# End-to-end tests with real parts built from their Go modules (pinned, cached in .cache/):
# Envoy Gateway (test/e2e/envoy-gateway.test.ts), kube-apiserver + etcd
# (test/e2e/kube-apiserver.test.ts and kube-endpoint-picker.test.ts, built by
# scripts/build-kube-apiserver.sh), and the Inference Extension's endpoint picker v1.5.0 behind
# Envoy (test/e2e/gie-epp.test.ts) and behind infergate (test/e2e/epp-protocol.test.ts), built by
# scripts/build-epp.sh. Also the Grafana dashboard's queries and the alerting rules in a real
# Prometheus that scrapes a real stack (test/e2e/prometheus.test.ts; Prometheus comes from
# scripts/install-prometheus.mjs). And the Helm chart (test/e2e/helm.test.ts; Helm built by
# scripts/build-helm.sh) against a kube-apiserver of its own. They run inside a private network
# namespace, because Envoy Gateway's host mode and the EPP bind their listeners on 0.0.0.0 and this
# suite only ever listens on its own loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
# Build everything before entering the namespace: inside it there is no network.
export EG_BIN="$(bash scripts/build-envoy-gateway.sh)"
kube_bins="$(bash scripts/build-kube-apiserver.sh)"
export KUBE_APISERVER_BIN="$(echo "$kube_bins" | sed -n 1p)" ETCD_BIN="$(echo "$kube_bins" | sed -n 2p)"
# The Gateway API's CRDs (HTTPRoute, ReferenceGrant), from the module Envoy Gateway depends on.
export GATEWAY_API_CRDS="$(bash scripts/gateway-api-crds.sh)"
epp_out="$(bash scripts/build-epp.sh)"
# The binary, and the module's directory (its CRDs are applied at run time).
export EPP_BIN="$(echo "$epp_out" | sed -n 1p)" EPP_MODULE_DIR="$(echo "$epp_out" | sed -n 2p)"
# Helm (test/e2e/helm.test.ts: lint, template, install/upgrade/uninstall against kube-apiserver),
# and the Prometheus Operator's CRDs and Envoy Gateway's chart that test uses.
export HELM_BIN="$(bash scripts/build-helm.sh)"
chart_deps="$(bash scripts/chart-test-deps.sh)"
export PROMETHEUS_OPERATOR_CRDS="$(echo "$chart_deps" | sed -n 1p)" EG_MODULE_DIR="$(echo "$chart_deps" | sed -n 2p)"
(. scripts/go-module.sh && trim_go_build_cache "$PWD")
# Prometheus and promtool: the system's, or Debian's package unpacked into .cache/ (apt needs the network).
prometheus_bins="$(node scripts/install-prometheus.mjs)"
export PROMETHEUS_BIN="$(echo "$prometheus_bins" | sed -n 1p)" PROMTOOL_BIN="$(echo "$prometheus_bins" | sed -n 2p)"
if ! unshare --net true 2>/dev/null; then
  echo "test-e2e: cannot create a network namespace (needs root or CAP_SYS_ADMIN)" >&2
  exit 1
fi
# One test file at a time: each starts heavy processes of its own. Test files given as arguments
# run instead of the whole suite (bash scripts/test-e2e.sh test/e2e/epp-protocol.test.ts).
files="${*:-test/e2e/*.test.ts}"
exec unshare --net bash -c "ip link set lo up && node --import tsx --test --test-concurrency=1 $files"
