#!/usr/bin/env bash
# Builds the Gateway API Inference Extension's endpoint picker (EPP), pinned, from its Go module
# (sigs.k8s.io/gateway-api-inference-extension, cmd/epp) into the git-ignored .cache/, for the
# peer comparison in bench/peers/ and test/e2e/gie-epp.test.ts. v1.5.0 is the last release that
# ships the full EPP (v1.6.0 moved it to llm-d). Nothing of it is committed.
#
# The module proxy serves exact versions but refuses the module's version list, so `go install
# ...@v1.5.0` fails; the module is downloaded by exact version and built inside a writable copy
# so its own go.mod applies. Prints the binary's path; a second line gives the module's directory
# in the module cache (its config/crd and config/manifests are read from there at run time).
set -euo pipefail
EPP_VERSION="${EPP_VERSION:-v1.5.0}"
MODULE=sigs.k8s.io/gateway-api-inference-extension
repo="$(cd "$(dirname "$0")/.." && pwd)"
root="$repo/.cache/epp/$EPP_VERSION"
bin="$root/epp"
. "$repo/scripts/go-module.sh"
go_module_env "$repo"
# Work in a scratch directory that no outer go.mod or go.work governs.
mkdir -p "$root" && cd "$repo/.cache"


dir="$(module_dir "$MODULE" "$EPP_VERSION")"
if [ ! -x "$bin" ]; then
  src="$root/src"
  rm -rf "$src"
  mkdir -p "$src"
  cp -r "$dir/." "$src/"
  chmod -R u+w "$src"
  # Dependencies are downloaded by the build itself (GOFLAGS=-mod=mod); retry it like the module.
  ok=
  for attempt in 1 2 3; do
    if (cd "$src" && GOWORK=off go build -trimpath -o "$bin.tmp" ./cmd/epp) >&2; then ok=1; break; fi
    sleep "$attempt"
  done
  [ -n "$ok" ] || { echo "build-epp: go build ./cmd/epp failed" >&2; exit 1; }
  mv "$bin.tmp" "$bin"
  rm -rf "$src"
fi
echo "$bin"
echo "$dir"
