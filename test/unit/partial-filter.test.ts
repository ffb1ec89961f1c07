// The stand-in filter bench/filter-ab.ts measures against (filter/probe/partial_filter.ts): each
// mode must do the part of the filter's work it claims, or the parts' costs mean nothing.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { buildPartialFilter } from "../../bench/filter-ab.ts";
import { WasmVm } from "../support/wasm-host.ts";
import { scratchDir } from "../support/scratch-dir.ts";

describe("the partial filter (filter/probe/partial_filter.ts)", () => {
  const wasm = readFileSync(buildPartialFilter(scratchDir("infergate-partial-filter")));
  const configured = (config: string): WasmVm => {
    const vm = new WasmVm({ wasm });
    assert.equal(vm.configure(config), true, config);
    return vm;
  };
  const send = (vm: WasmVm) => {
    const s = vm.open({ ":method": "POST", ":path": "/v1/completions" });
    const actions = [vm.headers(s, false), vm.body(s, '{"model":"m","prompt":"x"}', false), vm.body(s, "", true)];
    return { s, actions };
  };

  it("callbacks: lets the request through at once and sets nothing", () => {
    const vm = configured("callbacks");
    const { s, actions } = send(vm);
    assert.deepEqual(actions, [0, 0, 0]);
    assert.equal(s.header("x-gateway-destination-endpoint"), undefined);
    assert.equal(vm.calls.get("proxy_get_header_map_pairs"), undefined);
  });

  it("route: holds the request until its body ends, then sets the destination and the pool", () => {
    const vm = configured("route 10.0.0.7:8000 default/p");
    const { s, actions } = send(vm);
    assert.deepEqual(actions, [1, 1, 0], "StopIteration, StopIterationAndBuffer, Continue");
    assert.equal(s.header("x-gateway-destination-endpoint"), "10.0.0.7:8000");
    assert.equal(s.header("x-infergate-pool"), "default/p");
    assert.equal(vm.calls.get("proxy_get_header_map_pairs"), undefined);
    assert.equal(vm.calls.get("proxy_get_buffer_bytes"), 1, "the configuration only");
  });

  it("read: also takes the request headers and each body chunk into the module", () => {
    const vm = configured("read 10.0.0.7:8000 default/p");
    const { s, actions } = send(vm);
    assert.deepEqual(actions, [1, 1, 0]);
    assert.equal(s.header("x-gateway-destination-endpoint"), "10.0.0.7:8000");
    assert.equal(vm.calls.get("proxy_get_header_map_pairs"), 1);
    assert.equal(vm.calls.get("proxy_get_buffer_bytes"), 2, "the configuration, then the body's one chunk");
  });

  it("refuses a configuration it does not know", () => {
    const vm = new WasmVm({ wasm });
    assert.equal(vm.configure("route 10.0.0.7:8000"), false);
    assert.equal(vm.configure("everything"), false);
  });
});
