# Sourced by the scripts that build peers and tools from their Go modules (Envoy Gateway,
# kube-apiserver and etcd, the Inference Extension's endpoint picker) into the git-ignored .cache/.
# Sets the Go environment to the project's cache and defines module_dir.

go_module_env() {
  local repo="$1"
  export GOPATH="$repo/.cache/go" GOMODCACHE="$repo/.cache/go/mod" GOCACHE="$repo/.cache/go/build" GOFLAGS=-mod=mod CGO_ENABLED=0
}

# Empties the Go build cache (over 5 GB once kube-apiserver is built). Only a build reads it; the
# binaries stay in .cache/ and the scripts skip building what is there, so a machine that runs the
# suite again and again keeps about 3 GB per clone instead of 9.
trim_go_build_cache() {
  go_module_env "$1"
  go clean -cache
}

# Prints the module's directory in the module cache, downloading it (exact version: the proxy
# serves exact versions even where it refuses the version list), retried: a transient proxy error
# must not turn into a silently missing module.
module_dir() {
  local out attempt
  for attempt in 1 2 3; do
    out="$(go mod download -json "$1@$2" 2>&1 || true)"
    if printf '%s' "$out" | grep -q '"Dir"'; then printf '%s' "$out" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'; return 0; fi
    sleep "$attempt"
  done
  printf 'cannot download %s@%s:\n%s\n' "$1" "$2" "$out" >&2
  return 1
}
