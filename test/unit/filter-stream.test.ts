// The compiled filter module (build/infergate.wasm, the one Envoy loads) driven through an
// in-process proxy-wasm host (test/support/wasm-host.ts): the per-request state machine, header
// handling and every host failure, and the load records worker VMs share — including records a
// crashed VM leaves behind. test/integration proves the same module in a real Envoy.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Clock, SharedData, Status, WasmVm, type HostStream } from "../support/wasm-host.ts";

const SNAPSHOT = `infergate-snapshot 1
version 3
pool team-a/llm
endpoint 10.0.0.1:8000 1000
endpoint 10.0.0.2:8000 1000
saturation team-a/llm 0
model qwq team-a/llm critical
target qwq-32b 100
model qwq-32b team-a/llm standard
target qwq-32b 1
`;

const CHAT = '{"model": "qwq", "messages": [{"role": "user", "content": "Who are you?"}]}';

/** The same pool, routed by an endpoint picker (a v1 pool's endpointPickerRef). */
const PICKER_SNAPSHOT = `${SNAPSHOT}picker team-a/llm\n`;

function vm(shared = new SharedData(), clock = new Clock(), snapshot = SNAPSHOT): WasmVm {
  const v = new WasmVm({ shared, clock });
  assert.equal(v.configure(snapshot), true);
  return v;
}

function routedTo(s: HostStream): string {
  assert.equal(s.localReply, undefined, s.localReply && JSON.stringify(s.localReply));
  return s.header("x-gateway-destination-endpoint")!.split(",")[0]!;
}

describe("filter stream (compiled module, in-process host)", () => {
  it("routes the seed's request: destination with fallbacks, pool, model and content-length rewritten", () => {
    const v = vm();
    const s = v.request("/v1/chat/completions", CHAT, { "x-gateway-destination-endpoint": "6.6.6.6:80", "x-infergate-pool": "evil" });
    assert.equal(s.lastAction, 0, "continues once routed");
    assert.match(s.header("x-gateway-destination-endpoint")!, /^10\.0\.0\.[12]:8000,10\.0\.0\.[12]:8000$/);
    assert.equal(s.header("x-infergate-pool"), "team-a/llm");
    assert.equal(s.json.model, "qwq-32b");
    assert.equal(Number(s.header("content-length")), s.body.length);
    assert.equal(v.counters.get("infergate.routed_total"), 1);
    assert.equal(v.counters.get("infergate.rewritten_total"), 1);
  });

  it("strips a client's routing headers on every route, and passes other routes through", () => {
    const v = vm();
    const s = v.open({ ":method": "GET", ":path": "/v1/models", "x-gateway-destination-endpoint": "6.6.6.6:80", "x-infergate-pool": "x" });
    assert.equal(v.headers(s, true), 0);
    assert.equal(s.header("x-gateway-destination-endpoint"), undefined);
    assert.equal(s.header("x-infergate-pool"), undefined);
  });

  it("never configured: strips the headers and answers inference requests 503", () => {
    const v = new WasmVm();
    assert.equal(v.configure("not a snapshot"), false, "the configuration is rejected");
    const s = v.request("/v1/chat/completions", CHAT, { "x-gateway-destination-endpoint": "6.6.6.6:80" });
    assert.equal(s.localReply?.status, 503);
    assert.equal(s.header("x-gateway-destination-endpoint"), undefined);
    const other = v.open({ ":method": "GET", ":path": "/health", "x-gateway-destination-endpoint": "6.6.6.6:80" });
    assert.equal(v.headers(other, true), 0);
    assert.equal(other.header("x-gateway-destination-endpoint"), undefined);
  });

  it("a host that refuses an edit the filter needs gets a 500, never an unrouted request", () => {
    for (const call of ["proxy_get_header_map_pairs", "proxy_remove_header_map_value", "proxy_replace_header_map_value", "proxy_set_buffer_bytes", "proxy_get_buffer_bytes"]) {
      const v = vm();
      v.failures.set(call, Status.InternalFailure);
      const s = v.request("/v1/chat/completions", CHAT, { "x-gateway-destination-endpoint": "6.6.6.6:80" });
      assert.equal(s.localReply?.status, 500, call);
      assert.equal(JSON.parse(s.localReply!.body).error.type, "internal_error", call);
    }
  });

  it("routes when trailers end the body, and refuses bodies over 8 MiB", () => {
    const v = vm();
    const s = v.open({ ":method": "POST", ":path": "/v1/completions" });
    v.headers(s, false);
    assert.equal(v.body(s, '{"model": "qwq", ', false), 1, "buffers");
    assert.equal(v.body(s, '"prompt": "hi"}', false), 1);
    assert.equal(v.trailers(s), 0);
    routedTo(s);
    const big = v.open({ ":method": "POST", ":path": "/v1/completions" });
    v.headers(big, false);
    v.body(big, `{"model": "qwq", "prompt": "${"x".repeat(8 * 1024 * 1024)}`, false);
    assert.equal(big.localReply?.status, 413);
  });
});

describe("calls across the VM boundary (each costs Envoy a few microseconds per request)", () => {
  it("a routed request with a rewritten model costs 24 crossings: callbacks, host calls and allocations", () => {
    const shared = new SharedData();
    const clock = new Clock();
    vm(shared, clock); // Envoy's configuration canary: configured, never routes
    const [a, b] = [vm(shared, clock), vm(shared, clock)];
    const one = (v: WasmVm): void => {
      const s = v.request("/v1/completions", `{"model": "qwq", "prompt": "${"x".repeat(4000)}"}`);
      routedTo(s);
      v.responseHeaders(s, { ":status": "200" });
      v.responseBody(s, true);
      v.finish(s);
    };
    one(a); one(b);
    clock.nowMs += 1500; // both refresh their view of the other (the heartbeat)
    one(a); one(b);
    a.calls.clear();
    one(a);
    const calls = Object.fromEntries(a.calls);
    assert.equal(calls.proxy_on_done, undefined, "not exported: on_delete does its work");
    assert.equal(calls.proxy_on_response_headers, undefined, "not exported: the first chunk reads what it needs");
    assert.equal(calls.proxy_get_shared_data, 1, "the other worker's record, not the canary's");
    assert.equal(calls.proxy_set_shared_data, 2, "the pick, then the release with the answer's last chunk");
    const total = [...a.calls.values()].reduce((x, y) => x + y, 0);
    assert.ok(total <= 24, `${total} crossings: ${JSON.stringify(calls)}`);
  });
});

describe("garbage collection (the module runs AssemblyScript's minimal runtime)", () => {
  const body = (i: number): string => JSON.stringify({ model: "qwq", prompt: `request ${i} ${"lorem ipsum ".repeat(340)}` });
  const complete = (v: WasmVm, s: HostStream): void => {
    v.responseHeaders(s, { ":status": "200" });
    v.responseBody(s);
    v.finish(s);
  };

  it("keeps memory bounded over many requests: what a request leaves behind is collected", () => {
    const v = vm();
    const run = (n: number): void => { for (let i = 0; i < n; i++) { const s = v.request("/v1/completions", body(i)); routedTo(s); complete(v, s); } };
    run(2000);
    const warm = v.memoryBytes;
    run(6000); // ~25 MB of bodies copied into the VM: without collections memory grows by that much
    assert.ok(v.memoryBytes <= warm + 1024 * 1024, `linear memory grew from ${warm} to ${v.memoryBytes} bytes`);
  });

  it("scans a large body where the host wrote it and frees it at once (no copy left for a collection)", () => {
    const v = vm();
    const big = `{"model": "qwq", "prompt": "${"x".repeat(512 * 1024)}"}`;
    const send = (): void => { const s = v.request("/v1/completions", big); routedTo(s); complete(v, s); };
    for (let i = 0; i < 3; i++) send(); // the allocator settles on room for one body
    const warm = v.memoryBytes;
    // 40 more: 20 MB of bodies in under 256 calls, so no collection runs; memory must not grow by them.
    for (let i = 0; i < 40; i++) send();
    assert.ok(v.memoryBytes <= warm + 1024 * 1024, `linear memory grew from ${warm} to ${v.memoryBytes} bytes`);
  });

  it("streams in progress keep their state across collections", () => {
    const v = vm();
    const open = Array.from({ length: 50 }, () => {
      const s = v.open({ ":method": "POST", ":path": "/v1/completions" });
      v.headers(s, false);
      return s;
    });
    // Each chunk is one call; a collection runs every few hundred calls, so these bodies are scanned
    // across many of them, interleaved with whole requests that make garbage.
    const text = body(0);
    const chunk = Math.ceil(text.length / 20);
    for (let k = 0; k < 20; k++) {
      for (const s of open) assert.equal(v.body(s, text.slice(k * chunk, (k + 1) * chunk), k === 19), k === 19 ? 0 : 1);
      for (let i = 0; i < 20; i++) { const s = v.request("/v1/completions", body(i)); complete(v, s); }
    }
    for (const s of open) {
      assert.match(routedTo(s), /^10\.0\.0\.[12]:8000$/);
      complete(v, s);
    }
    assert.equal(v.counters.get("infergate.routed_total"), 50 + 20 * 20);
  });
});

describe("load shared between worker VMs", () => {
  /** Two worker VMs of one Envoy (shared data and clock), the first with one 200 KB prompt open
   * on `loaded`: that endpoint is now 200 KB costlier for both. */
  function twoWithBigPrompt(): { a: WasmVm; b: WasmVm; big: HostStream; loaded: string } {
    const shared = new SharedData();
    const clock = new Clock();
    const a = vm(shared, clock);
    const b = vm(shared, clock);
    const [big] = inflight(a, 1, 200_000);
    return { a, b, big: big!, loaded: routedTo(big!) };
  }

  /** Sends `n` requests with `bytes`-byte prompts on a VM and keeps them open (no first byte). */
  function inflight(v: WasmVm, n: number, bytes: number): HostStream[] {
    return Array.from({ length: n }, () => v.request("/v1/completions", `{"model": "qwq", "prompt": "${"p".repeat(bytes)}"}`));
  }

  it("another VM's open requests steer this VM's picks; finished ones stop counting", () => {
    const { a, b, big, loaded } = twoWithBigPrompt();
    for (let i = 0; i < 20; i++) assert.notEqual(routedTo(b.request("/v1/completions", `{"model": "qwq", "prompt": "q${i}"}`)), loaded);
    a.finish(big);
    const seen = new Set(Array.from({ length: 40 }, (_, i) => routedTo(b.request("/v1/completions", `{"model": "qwq", "prompt": "r${i}"}`))));
    assert.equal(seen.size, 2, "both endpoints are picked again");
  });

  it("on a pool an endpoint picker routes, moves a request's load to the endpoint that served it, at the answer's first chunk", () => {
    const shared = new SharedData();
    const clock = new Clock();
    const a = vm(shared, clock, PICKER_SNAPSHOT);
    const b = vm(shared, clock, PICKER_SNAPSHOT);
    // A routes eight prompts (its picks spread over both endpoints); the endpoint picker sends
    // every one to the same endpoint.
    const open = inflight(a, 8, 20_000);
    const picks = open.map(routedTo);
    const [served, idle] = ["10.0.0.1:8000", "10.0.0.2:8000"];
    assert.ok(picks.includes(idle!), `A spread its picks: ${picks.join(" ")}`);
    for (const s of open) {
      s.properties.set("upstream\0address", served!);
      a.responseHeaders(s, { ":status": "200" });
      a.calls.clear();
      a.responseBody(s);
      assert.equal(a.calls.get("proxy_set_shared_data"), 1, "the move and the first byte, in one write");
    }
    assert.equal(a.counters.get("infergate.served_elsewhere_total"), picks.filter((p) => p === idle).length);
    // All eight are decoding on the served endpoint: B's requests (each answered at once) go to the other.
    const routeAndFinish = (tag: string): string => { const s = b.request("/v1/completions", `{"model": "qwq", "prompt": "${tag}"}`); const to = routedTo(s); b.finish(s); return to; };
    for (let i = 0; i < 20; i++) assert.equal(routeAndFinish(`s${i}`), idle);
    // The end releases the load where it was moved: nothing is left behind on either endpoint.
    for (const s of open) { a.responseBody(s, true); a.finish(s); }
    const seen = new Set(Array.from({ length: 40 }, (_, i) => routeAndFinish(`t${i}`)));
    assert.equal(seen.size, 2, "finished requests leave no load behind on either endpoint");
  });

  it("on a pool with no endpoint picker, never reads the served endpoint", () => {
    const v = vm();
    const [s] = inflight(v, 1, 10);
    s!.properties.set("upstream\0address", routedTo(s!) === "10.0.0.1:8000" ? "10.0.0.2:8000" : "10.0.0.1:8000");
    v.calls.clear();
    v.responseBody(s!);
    v.responseBody(s!, true);
    assert.equal(v.calls.get("proxy_get_property"), undefined);
    assert.equal(v.counters.get("infergate.served_elsewhere_total") ?? 0, 0);
  });

  it("every worker knows where the others sent a prompt prefix", () => {
    const prompt = (tag: number, i: number) => `{"model": "qwq", "prompt": "tenant ${tag} ${"system prompt ".repeat(30)} question ${i}"}`;
    const { a, b, big, loaded } = twoWithBigPrompt();
    // A prefix whose first placement, on an idle pool, would be the endpoint A's big request loads.
    const tag = Array.from({ length: 50 }, (_, t) => t).find((t) => routedTo(vm().request("/v1/completions", prompt(t, 0))) === loaded)!;
    assert.notEqual(tag, undefined);
    // A sends that prefix to the other endpoint (the first one is loaded), then the load goes away.
    const placed = routedTo(a.request("/v1/completions", prompt(tag, 1)));
    assert.notEqual(placed, loaded);
    a.finish(big);
    // B never saw the prefix itself; it follows A's placement, counted as an affinity pick.
    assert.equal(routedTo(b.request("/v1/completions", prompt(tag, 2))), placed);
    assert.equal(b.counters.get("infergate.affinity_routed_total"), 1);
    // A VM that shares nothing with A places it where an idle pool would.
    assert.equal(routedTo(vm().request("/v1/completions", prompt(tag, 3))), loaded);
  });

  it("counts the bytes it scanned, not a client's content-length", () => {
    const v = vm();
    const body = '{"model": "qwq", "prompt": "hi"}';
    const s = v.request("/v1/completions", body, { "content-length": "9223372036854775807" });
    routedTo(s);
    const record = [...v.shared.entries].find(([k]) => k.startsWith("infergate/load/"))![1].value;
    const view = new DataView(record.buffer);
    assert.equal(view.getUint32(0, true), 1);
    assert.equal(view.getBigInt64(4 + 8, true), BigInt(body.length), "pending bytes = the body scanned");
    assert.equal(view.getBigInt64(4 + 16, true), 1n, "one in flight");
  });

  /** This VM's load record: endpoints it loads, with their pending prompt bytes and requests in flight. */
  function ownRecord(v: WasmVm): Array<{ pending: bigint; inflight: bigint }> {
    const record = [...v.shared.entries].find(([k]) => k.startsWith("infergate/load/"))![1].value;
    const view = new DataView(record.buffer, record.byteOffset);
    return Array.from({ length: view.getUint32(0, true) }, (_, k) => ({ pending: view.getBigInt64(4 + k * 24 + 8, true), inflight: view.getBigInt64(4 + k * 24 + 16, true) }));
  }

  it("a request releases its load with the last chunk of its answer, before Envoy ends the stream", () => {
    const v = vm();
    const [whole, streamed] = inflight(v, 2, 1000);
    v.responseHeaders(whole!, { ":status": "200" });
    v.responseBody(whole!, true); // one chunk, the whole answer
    v.responseHeaders(streamed!, { ":status": "200" });
    v.responseBody(streamed!); // the first token: prefill is over, decoding goes on
    assert.deepEqual(ownRecord(v), [{ pending: 0n, inflight: 1n }], "only the streamed request loads its endpoint, its prompt no longer");
    v.responseBody(streamed!, true);
    assert.deepEqual(ownRecord(v), [], "the streamed request released its load with its last chunk");
    v.finish(whole!);
    v.finish(streamed!);
    assert.deepEqual(ownRecord(v), [], "ending the streams releases nothing twice");
  });

  it("the first worker to route sees the others as soon as they route, within the same second", () => {
    const shared = new SharedData();
    const clock = new Clock();
    const [a, b] = [vm(shared, clock), vm(shared, clock)];
    routedTo(a.request("/v1/completions", '{"model": "qwq", "prompt": "first"}')); // A registers alone
    const [big] = inflight(b, 1, 200_000); // then B registers, with a 200 KB prompt open
    const loaded = routedTo(big!);
    // The clock has not moved: A's heartbeat is not due, yet A sees B's load.
    for (let i = 0; i < 20; i++) assert.notEqual(routedTo(a.request("/v1/completions", `{"model": "qwq", "prompt": "u${i}"}`)), loaded);
  });

  it("a VM that never routes (Envoy's configuration canary) does not register, so workers read no record of it", () => {
    const shared = new SharedData();
    const clock = new Clock();
    vm(shared, clock); // configured, never routes
    assert.equal(shared.get("infergate/instances"), undefined, "configuring alone registers nothing");
    const worker = vm(shared, clock);
    routedTo(worker.request("/v1/completions", '{"model": "qwq", "prompt": "hi"}'));
    assert.equal(new DataView(shared.get("infergate/instances")!.value.buffer).getUint32(0, true), 1, "the worker registered on its first pick");
  });

  it("load left by a VM that died stops counting after 5 s and is cleared after 30 s", () => {
    const shared = new SharedData();
    const clock = new Clock();
    const crashed = vm(shared, clock);
    const survivor = vm(shared, clock);
    const streams = inflight(crashed, 3, 100_000); // never finished: the VM is gone
    const loaded = new Set(streams.map(routedTo));
    assert.ok(loaded.size >= 1);
    const picks = (tag: string) => new Set(Array.from({ length: 30 }, (_, i) => routedTo(survivor.request("/v1/completions", `{"model": "qwq", "prompt": "${tag}${i}"}`))));
    if (loaded.size === 1) assert.ok(![...picks("x")].some((e) => loaded.has(e)), "while the VM is alive, its load counts");
    clock.nowMs += 6000; // the survivor's next request refreshes its view (traffic is the heartbeat)
    assert.equal(picks("y").size, 2, "after 5 s of silence, its load no longer counts");
    clock.nowMs += 30_000;
    routedTo(survivor.request("/v1/completions", '{"model": "qwq", "prompt": "z"}'));
    const registry = shared.get("infergate/instances")!.value;
    assert.equal(new DataView(registry.buffer).getUint32(0, true), 1, "only the survivor is registered");
    const records = [...shared.entries].filter(([k, e]) => k.startsWith("infergate/load/") && e.value.length > 4);
    assert.ok(records.every(([, e]) => new DataView(e.value.buffer).getUint32(0, true) <= 30), "the dead VM's record is emptied");
    assert.ok([...shared.entries].some(([k, e]) => k.startsWith("infergate/load/") && e.value.length === 0), "emptied, not left behind");
  });
});
