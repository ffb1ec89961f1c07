// The Wasm filters an EnvoyExtensionPolicy attaches with rootID "infergate". Envoy Gateway puts
// them inline in the listener, with the policy's own module: `code.http.url` through its Wasm cache
// (a URI on Envoy Gateway's wasm server and the `wasm_cluster`) and the sha256 the policy pinned.
// The Listener hook (hooks.ts) feeds such a filter over ECDS under its Envoy Gateway name
// (`envoy.filters.http.wasm/envoyextensionpolicy/<ns>/<name>/wasm/<i>`), so it gets the live
// snapshot. What infergate serves under that name is the policy's filter as Envoy Gateway
// translated it, with only what the routing needs changed:
//   - kept: the plugin's name, root_id and whole vm_config (vm_id, runtime, the module's URI,
//     cluster, sha256 and retry policy, environment), and any field we do not know;
//   - replaced: `configuration` (the policy's `config`) by the routing snapshot;
//   - set as infergate's own filter sets them: `allow_on_headers_stop_iteration` (the filter holds
//     the headers while it reads the body), and `failure_policy` FAIL_RELOAD unless the policy
//     asked to fail open (`failOpen: true`, which Envoy Gateway writes as `fail_open`), which stays.
// So a policy that pins an older module keeps running that module; the module is never swapped
// for infergate's own behind the policy's back.
import { fieldNumbers } from "../xds/protos.ts";
import { WireMessage } from "../xds/wire.ts";

const WASM = fieldNumbers("envoy.extensions.filters.http.wasm.v3.Wasm", ["config"]);
const PLUGIN = fieldNumbers("envoy.extensions.wasm.v3.PluginConfig", ["configuration", "fail_open", "failure_policy", "allow_on_headers_stop_iteration"]);

function plugin(wasm: Uint8Array): WireMessage {
  return WireMessage.decode(WireMessage.decode(wasm).first(WASM.config)?.bytes ?? new Uint8Array());
}

/**
 * The ECDS configuration for a policy's filter: `policyWasm` is the filter's Wasm message as Envoy
 * Gateway sent it, `ours` infergate's own filter (envoy/resources.ts wasmFilter) with the snapshot,
 * both encoded.
 */
export function policyWasmFilter(policyWasm: Uint8Array, ours: Uint8Array): Uint8Array {
  const theirs = plugin(policyWasm);
  const own = plugin(ours);
  const failOpen = theirs.varint(PLUGIN.fail_open) === 1;
  const replaced = [PLUGIN.configuration, PLUGIN.allow_on_headers_stop_iteration, ...(failOpen ? [] : [PLUGIN.failure_policy])];
  theirs.remove(...replaced);
  theirs.fields.push(...own.fields.filter((f) => replaced.includes(f.field)));
  const wasm = WireMessage.decode(policyWasm);
  wasm.remove(WASM.config);
  wasm.add(WASM.config, theirs.encode());
  return wasm.encode();
}
