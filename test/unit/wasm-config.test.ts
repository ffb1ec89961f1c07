import assert from "node:assert/strict";
import { describe, it } from "node:test";
import protobuf from "protobufjs";
import { protoRoot } from "../../extension-server/src/xds/protos.ts";
import { encodeWasmFilter } from "../../extension-server/src/xds/wasm-config.ts";

/** Field number → last raw value, for a message's top level (varints as numbers, the rest as bytes). */
function fields(bytes: Uint8Array): Map<number, number | Uint8Array> {
  const reader = protobuf.Reader.create(bytes);
  const out = new Map<number, number | Uint8Array>();
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (wire === 0) out.set(field, reader.uint32());
    else if (wire === 2) {
      const chunk = reader.bytes();
      const prev = out.get(field);
      // Repeated occurrences of a singular message field merge: keep their concatenation.
      out.set(field, prev instanceof Uint8Array ? Buffer.concat([prev, chunk]) : chunk);
    } else reader.skipType(wire);
  }
  return out;
}

describe("ECDS Wasm configuration", () => {
  it("carries the snapshot, the local module, FAIL_RELOAD and allow_on_headers_stop_iteration = true", () => {
    const bytes = encodeWasmFilter({ wasmPath: "/opt/infergate.wasm", snapshot: "infergate-snapshot 1\nversion 3\n" });
    const Wasm = protoRoot().lookupType("envoy.extensions.filters.http.wasm.v3.Wasm");
    const decoded = Wasm.toObject(Wasm.decode(bytes)) as any;
    assert.equal(decoded.config.root_id, "infergate");
    assert.equal(decoded.config.vm_config.runtime, "envoy.wasm.runtime.v8");
    assert.equal(decoded.config.vm_config.code.local.filename, "/opt/infergate.wasm");
    const StringValue = protoRoot().lookupType("google.protobuf.StringValue");
    assert.equal((StringValue.decode(decoded.config.configuration.value) as any).value, "infergate-snapshot 1\nversion 3\n");
    // Field 9 of PluginConfig (newer than the vendored protos): a BoolValue whose field 1 is 1.
    const plugin = fields(bytes).get(1) as Uint8Array;
    const allow = fields(plugin).get(9) as Uint8Array;
    assert.ok(allow instanceof Uint8Array, "field 9 present");
    assert.equal(fields(allow).get(1), 1);
    assert.equal(fields(plugin).get(7), 1, "failure_policy FAIL_RELOAD");
    assert.equal(fields(plugin).get(5), undefined, "the deprecated fail_open is not set");
  });
});
