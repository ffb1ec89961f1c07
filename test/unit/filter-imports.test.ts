// Envoy refuses a Wasm module that imports anything it does not provide. AssemblyScript adds
// `env.abort`, `env.trace` and `env.seed` imports by default; this checks none slipped in.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";

/** proxy-wasm ABI 0.2.1 host functions as Envoy (proxy-wasm-cpp-host) registers them. */
const ENVOY_ENV_IMPORTS = new Set([
  "proxy_log", "proxy_get_log_level", "proxy_get_buffer_bytes", "proxy_get_buffer_status", "proxy_set_buffer_bytes",
  "proxy_get_header_map_value", "proxy_add_header_map_value", "proxy_replace_header_map_value", "proxy_remove_header_map_value",
  "proxy_get_header_map_pairs", "proxy_set_header_map_pairs", "proxy_get_header_map_size",
  "proxy_continue_stream", "proxy_close_stream", "proxy_send_local_response",
  "proxy_get_property", "proxy_set_property", "proxy_get_shared_data", "proxy_set_shared_data",
  "proxy_register_shared_queue", "proxy_resolve_shared_queue", "proxy_enqueue_shared_queue", "proxy_dequeue_shared_queue",
  "proxy_set_tick_period_milliseconds", "proxy_get_current_time_nanoseconds",
  "proxy_http_call", "proxy_grpc_call", "proxy_grpc_stream", "proxy_grpc_send", "proxy_grpc_cancel", "proxy_grpc_close",
  "proxy_get_status", "proxy_define_metric", "proxy_increment_metric", "proxy_record_metric", "proxy_get_metric",
  "proxy_call_foreign_function", "proxy_set_effective_context", "proxy_done",
]);

describe("compiled filter module", () => {
  const wasm = readFileSync(new URL("../../build/infergate.wasm", import.meta.url));
  const module = new WebAssembly.Module(wasm);

  it("imports only host functions Envoy provides", () => {
    const imports = WebAssembly.Module.imports(module);
    assert.ok(imports.length > 0);
    for (const i of imports) {
      assert.equal(i.kind, "function", `${i.module}.${i.name}`);
      assert.ok(i.module === "env" && ENVOY_ENV_IMPORTS.has(i.name), `unexpected import ${i.module}.${i.name}`);
    }
  });

  it("never sets a tick period (Envoy keeps one timer per root context that ever did, and a push makes a root context)", () => {
    // bench/results/reliability.md: with a tick, Envoy's heap grew with every snapshot pushed.
    const names = WebAssembly.Module.imports(module).map((i) => i.name);
    assert.ok(!names.includes("proxy_set_tick_period_milliseconds"));
    assert.ok(!WebAssembly.Module.exports(module).some((e) => e.name === "proxy_on_tick"));
  });

  it("exports the ABI 0.2.1 marker, the allocator and the callbacks Envoy calls", () => {
    const exports = new Set(WebAssembly.Module.exports(module).map((e) => e.name));
    for (const name of ["proxy_abi_version_0_2_1", "proxy_on_memory_allocate", "_initialize", "memory", "proxy_on_vm_start",
      "proxy_on_configure", "proxy_on_context_create", "proxy_on_request_headers", "proxy_on_request_body", "proxy_on_delete"]) {
      assert.ok(exports.has(name), `missing export ${name}`);
    }
  });
});
