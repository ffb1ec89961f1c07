// A Wasm filter an EnvoyExtensionPolicy attaches (rootID infergate) is fed over ECDS under the name
// Envoy Gateway gives it, with the policy's own module: through the hooks and the xDS server of a
// running extension server, the configuration served under that name keeps the policy's URI,
// cluster, sha256 and VM, and carries infergate's snapshot and the settings the filter needs.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { SERVICE } from "../../extension-server/src/gateway/hooks.ts";
import { InfergateServer } from "../../extension-server/src/server.ts";
import { protoRoot, typeUrl } from "../../extension-server/src/xds/protos.ts";
import { TYPE_EXTENSION_CONFIG } from "../../extension-server/src/xds/server.ts";
import { WireMessage } from "../../extension-server/src/xds/wire.ts";

const root = protoRoot();
const Listener = root.lookupType("envoy.config.listener.v3.Listener");
const HCM = root.lookupType("envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager");
const Wasm = root.lookupType("envoy.extensions.filters.http.wasm.v3.Wasm");
const ExtensionConfig = root.lookupType("envoy.config.core.v3.TypedExtensionConfig");
const Request = root.lookupType("envoy.service.discovery.v3.DiscoveryRequest");
const Response = root.lookupType("envoy.service.discovery.v3.DiscoveryResponse");
const StringValue = root.lookupType("google.protobuf.StringValue");

/** The filter name Envoy Gateway v1.9 gives spec.wasm[0] of EnvoyExtensionPolicy default/infergate. */
const POLICY_FILTER = "envoy.filters.http.wasm/envoyextensionpolicy/default/infergate/wasm/0";
const POLICY_URI = "https://envoy-gateway.envoy-gateway-system.svc.cluster.local:18002/0f3c9e.wasm";
const POLICY_SHA = "1".repeat(64);

/** The policy's Wasm filter as Envoy Gateway translates it (internal/xds/translator/wasm.go). */
function policyWasm(failOpen: boolean): Uint8Array {
  const bytes = Wasm.encode(Wasm.fromObject({
    config: {
      name: "infergate", root_id: "infergate", fail_open: failOpen,
      vm_config: {
        vm_id: "envoyextensionpolicy/default/infergate/wasm/0", runtime: "envoy.wasm.runtime.v8",
        code: { remote: { http_uri: { uri: POLICY_URI, cluster: "wasm_cluster", timeout: { seconds: 10 } }, sha256: POLICY_SHA, retry_policy: { num_retries: { value: 10 } } } },
      },
      configuration: { type_url: typeUrl("google.protobuf.StringValue"), value: StringValue.encode({ value: "{\"policy\": \"config\"}" }).finish() },
    },
  })).finish();
  // A PluginConfig field newer than our protos must survive.
  const wasm = WireMessage.decode(bytes);
  const plugin = WireMessage.decode(wasm.first(1)!.bytes);
  plugin.add(9100, Buffer.from("future"));
  wasm.fields = [{ field: 1, wireType: 2, bytes: plugin.encode() }];
  return wasm.encode();
}

function listener(wasm: Uint8Array): Uint8Array {
  const hcm = HCM.encode(HCM.fromObject({
    stat_prefix: "http",
    http_filters: [
      { name: POLICY_FILTER, disabled: true, typed_config: { type_url: typeUrl("envoy.extensions.filters.http.wasm.v3.Wasm"), value: wasm } },
      { name: "envoy.filters.http.router" },
    ],
  })).finish();
  return Listener.encode(Listener.fromObject({
    name: "default/plain-gateway/http", address: { socket_address: { address: "0.0.0.0", port_value: 80 } },
    filter_chains: [{ filters: [{ name: "envoy.filters.network.http_connection_manager", typed_config: { type_url: typeUrl("envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"), value: hcm } }] }],
  })).finish();
}

describe("EnvoyExtensionPolicy Wasm filters over ECDS", () => {
  let server: InfergateServer;
  let hooks: grpc.Client;
  let xds: grpc.Client;

  before(async () => {
    server = new InfergateServer({
      source: { file: new URL("../../manifests/standalone/seed.yaml", import.meta.url).pathname },
      xdsPort: 0, hooksPort: 0, moduleAdvertise: { host: "infergate.infergate-system.svc.cluster.local" }, log: () => undefined,
    });
    await server.start();
    hooks = new grpc.Client(`127.0.0.1:${server.hooksPort}`, grpc.credentials.createInsecure());
    xds = new grpc.Client(`127.0.0.1:${server.xdsPort}`, grpc.credentials.createInsecure());
  });
  after(async () => { hooks.close(); xds.close(); await server.stop(); });

  const upgrade = (bytes: Uint8Array): Promise<WireMessage> => new Promise((resolve, reject) => {
    hooks.makeUnaryRequest(`/${SERVICE}/PostHTTPListenerModify`, (m: WireMessage) => Buffer.from(m.encode()), (b: Buffer) => WireMessage.decode(new Uint8Array(b)),
      new WireMessage([{ field: 1, wireType: 2, bytes }]), (err, res) => (err ? reject(err) : resolve(res!)));
  });

  /** What the xDS server answers an ECDS subscription to `name` with: the plugin configuration. */
  const served = (name: string): Promise<any> => new Promise((resolve, reject) => {
    const call = xds.makeBidiStreamRequest("/envoy.service.extension.v3.ExtensionConfigDiscoveryService/StreamExtensionConfigs",
      (m: object) => Buffer.from(Request.encode(Request.fromObject(m)).finish()), (b: Buffer) => Response.decode(b) as any);
    const timer = setTimeout(() => { call.cancel(); reject(new Error(`no answer for ${name}`)); }, 3000);
    call.on("data", (response: any) => {
      clearTimeout(timer);
      call.cancel();
      const configs = response.resources.map((r: any) => ExtensionConfig.decode(r.value) as any);
      const mine = configs.find((c: any) => c.name === name);
      if (!mine) { reject(new Error(`answered ${configs.map((c: any) => c.name).join(", ") || "nothing"}`)); return; }
      resolve(mine.typed_config.value);
    });
    call.on("error", () => undefined);
    call.write({ type_url: TYPE_EXTENSION_CONFIG, resource_names: [name], node: { id: "envoy-eep" } });
  });

  it("serves the policy's module (URI, cluster, sha256, VM) with the snapshot, under the policy filter's name", async () => {
    await upgrade(listener(policyWasm(false)));
    const wasmBytes: Uint8Array = await served(POLICY_FILTER);
    const plugin = (Wasm.toObject(Wasm.decode(wasmBytes), { enums: String }) as any).config;
    const remote = plugin.vm_config.code.remote;
    assert.equal(remote.http_uri.uri, POLICY_URI, "the policy's module, not infergate's own download");
    assert.equal(remote.http_uri.cluster, "wasm_cluster");
    assert.equal(remote.sha256, POLICY_SHA);
    assert.equal(remote.retry_policy.num_retries.value, 10);
    assert.equal(plugin.vm_config.vm_id, "envoyextensionpolicy/default/infergate/wasm/0");
    assert.deepEqual([plugin.name, plugin.root_id], ["infergate", "infergate"]);
    const snapshot = (StringValue.decode(plugin.configuration.value) as any).value as string;
    assert.match(snapshot, /^infergate-snapshot /, "the routing snapshot replaces the policy's config");
    assert.match(snapshot, /model qwq default\/reasoning-pool critical/);
    assert.equal(plugin.allow_on_headers_stop_iteration.value, true);
    assert.equal(plugin.failure_policy, "FAIL_RELOAD");
    assert.equal(WireMessage.decode(WireMessage.decode(wasmBytes).first(1)!.bytes).string(9100), "future", "fields we do not know are kept");
    // infergate's own filter still downloads infergate's module.
    const ours = (Wasm.toObject(Wasm.decode(await served("infergate"))) as any).config.vm_config.code.remote;
    assert.match(ours.http_uri.uri, /^http:\/\/infergate\.infergate-system\.svc\.cluster\.local:\d+\/filter\/infergate\.wasm$/);
    assert.notEqual(ours.sha256, POLICY_SHA);
  });

  it("keeps a policy's failOpen, and follows a new sha256 when the policy changes", async () => {
    const newer = policyWasm(true);
    const plugin = WireMessage.decode(WireMessage.decode(newer).first(1)!.bytes);
    await upgrade(listener(newer));
    const config = (Wasm.toObject(Wasm.decode(await served(POLICY_FILTER)), { enums: String }) as any).config;
    assert.equal(config.fail_open, true);
    assert.equal(config.failure_policy, undefined, "no failure_policy overriding the policy's fail_open");
    assert.ok(plugin.first(9100));
    const bumped = Wasm.decode(newer) as any;
    bumped.config.vm_config.code.remote.sha256 = "2".repeat(64);
    await upgrade(listener(Wasm.encode(bumped).finish()));
    assert.equal((Wasm.toObject(Wasm.decode(await served(POLICY_FILTER))) as any).config.vm_config.code.remote.sha256, "2".repeat(64));
  });

  it("serves nothing under a filter name no policy filter has", async () => {
    await assert.rejects(served("envoy.filters.http.wasm/envoyextensionpolicy/other/x/wasm/0"), /answered nothing|no answer/);
  });
});
