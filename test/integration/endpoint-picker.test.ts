// The endpoint picker protocol through real Envoy: v1 InferencePools whose `endpointPickerRef`
// names a picker (a fake ext_proc server, test/support/fake-picker.ts, for precise control of its
// answers; test/e2e/epp-protocol.test.ts runs the real EPP v1.5.0), in standalone mode (the YAML
// carries the picker's Service). What is checked: the picker's choice wins over infergate's pick
// and over a client's header; its ordered list is walked when the first endpoint is down; the
// served endpoint reaches the picker and the client; infergate still validates, rewrites and sheds
// before the callout; FailOpen and FailClose when the picker is killed, or never resolved.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startSimServer, type SimServer } from "../../sim/server.ts";
import { startFakePicker, type FakePicker, type PickerAnswer, type PickerRequest } from "../support/fake-picker.ts";
import { podsYaml, postJson, SIM_PORT, startStack, waitFor, type Stack } from "../support/stack.ts";

const OPEN = ["127.0.10.1", "127.0.10.2"];
/** A Pod of the FailOpen pool whose server is down (connections refused). */
const DEAD = "127.0.10.3";
const CLOSE = ["127.0.10.4", "127.0.10.5"];
const MISSING = ["127.0.10.6"];
const PLAIN = ["127.0.10.7"];
const OUTSIDER = "127.0.10.99";
const OPEN_PICKER_PORT = 19_102;
const CLOSE_PICKER_PORT = 19_103;
/** The pickers' (and so their Services') address, off 127.0.0.1 so nothing else is there. */
const PICKER_IP = "127.0.10.200";
const at = (ip: string): string => `${ip}:${SIM_PORT}`;

function pool(name: string, app: string, picker?: { service: string; port: number; failureMode: string }): string {
  const ref = picker ? `\n  endpointPickerRef: {name: ${picker.service}, port: {number: ${picker.port}}, failureMode: ${picker.failureMode}}` : "";
  return `---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: ${name}}
spec:
  selector: {matchLabels: {app: ${app}}}
  targetPorts: [{number: ${SIM_PORT}}]${ref}
`;
}

/** The picker's Service: its cluster IP and port, plaintext HTTP/2 (the fake picker has no TLS). */
const service = (name: string, port: number): string => `---
apiVersion: v1
kind: Service
metadata: {name: ${name}}
spec: {clusterIP: ${PICKER_IP}, ports: [{name: grpc, port: ${port}, appProtocol: kubernetes.io/h2c}]}
`;

function model(name: string, poolName: string, criticality = "Critical", target?: string): string {
  return `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: ${name}}
spec: {modelName: ${name}, criticality: ${criticality}, poolRef: {name: ${poolName}}${target ? `, targetModels: [{name: ${target}, weight: 1}]` : ""}}
`;
}

const CONFIG = [
  pool("open-pool", "open", { service: "open-picker", port: OPEN_PICKER_PORT, failureMode: "FailOpen" }),
  pool("close-pool", "close", { service: "close-picker", port: CLOSE_PICKER_PORT, failureMode: "FailClose" }),
  pool("missing-close", "missing", { service: "no-such-service", port: 9002, failureMode: "FailClose" }),
  pool("missing-open", "missing", { service: "no-such-service", port: 9002, failureMode: "FailOpen" }),
  pool("plain-pool", "plain"),
  service("open-picker", OPEN_PICKER_PORT), service("close-picker", CLOSE_PICKER_PORT),
  model("open", "open-pool", "Critical", "open-target"), model("close", "close-pool"),
  model("missing-close", "missing-close"), model("missing-open", "missing-open"), model("plain", "plain-pool"),
  podsYaml("open", [...OPEN, DEAD]), podsYaml("close", CLOSE), podsYaml("missing", MISSING), podsYaml("plain", PLAIN),
].join("");

let seq = 0;
const completion = (m: string): Record<string, unknown> => ({ model: m, prompt: `request ${++seq}`, max_tokens: 1 });

describe("endpoint picker protocol (ext_proc) through real Envoy, standalone", () => {
  let stack: Stack;
  let openPicker: FakePicker;
  let closePicker: FakePicker;
  let outsider: SimServer;
  /** What the FailOpen pool's picker answers next. */
  let answer: (req: PickerRequest) => PickerAnswer = () => ({ endpoints: [at(OPEN[1]!)] });

  before(async () => {
    openPicker = await startFakePicker({ host: PICKER_IP, port: OPEN_PICKER_PORT, pick: (req) => answer(req) });
    closePicker = await startFakePicker({ host: PICKER_IP, port: CLOSE_PICKER_PORT, pick: () => ({ endpoints: [at(CLOSE[0]!)] }) });
    outsider = await startSimServer({ host: OUTSIDER, port: SIM_PORT, servedModels: ["open", "open-target"], ttftMs: 1, itlMs: 0 });
    stack = await startStack(CONFIG, [
      ...OPEN.map((ip) => ({ ip, models: ["open-target"] })),
      ...CLOSE.map((ip) => ({ ip, models: ["close"] })),
      ...MISSING.map((ip) => ({ ip, models: ["missing-close", "missing-open"] })),
      ...PLAIN.map((ip) => ({ ip, models: ["plain"] })),
    ]);
    // The picker clusters' first health checks (a host is used once it has passed one).
    await waitFor(async () => (await postJson(`${stack.inferenceUrl}/v1/completions`, completion("close"))).status === 200, 5000, 100);
  });

  after(async () => {
    await stack?.stop();
    await openPicker?.stop();
    await closePicker?.stop();
    await outsider?.close();
  });

  const url = (): string => `${stack.inferenceUrl}/v1/completions`;
  const stat = async (name: string): Promise<number> => {
    const text = await stack.server.envoy!.admin(`stats?filter=${encodeURIComponent(name)}`);
    return Number(new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: (\\d+)$`, "m").exec(text)?.[1] ?? 0);
  };
  const pickerHost = (port: number): Promise<string> => stack.server.envoy!.admin("clusters").then((t) =>
    t.split("\n").filter((l) => l.includes(`${PICKER_IP}:${port}::health_flags::`)).join(""));

  it("sends the request where the picker says, not where infergate or the client would", async () => {
    for (const target of [OPEN[0]!, OUTSIDER]) {
      for (const choice of OPEN) {
        answer = () => ({ endpoints: [at(choice)] });
        const before = openPicker.requests.length;
        const r = await postJson(url(), completion("open"), { "x-gateway-destination-endpoint": at(target) });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.servedBy, at(choice), `picker chose ${choice}, client asked for ${target}`);
        // The picker saw infergate's own pick, never the client's header.
        const seen = openPicker.requests[before]!.headers["x-gateway-destination-endpoint"]!;
        assert.ok(seen.split(",").every((e) => [...OPEN, DEAD].map(at).includes(e)), seen);
      }
    }
    assert.equal(outsider.stats().requests, 0);
  });

  it("takes the picker's answer from its header alone or from its envoy.lb metadata alone", async () => {
    for (const via of ["header", "metadata"] as const) {
      for (const choice of OPEN) {
        answer = () => ({ endpoints: [at(choice)], via });
        const r = await postJson(url(), completion("open"));
        assert.equal(r.servedBy, at(choice), `answer by ${via}`);
      }
    }
  });

  it("walks the picker's ordered list when the first endpoint is down", async () => {
    const retries = await stat("cluster.infergate-pool/default/open-pool-picked.upstream_rq_retry");
    for (const live of OPEN) {
      answer = () => ({ endpoints: [at(DEAD), at(live)] });
      for (let i = 0; i < 3; i++) {
        const r = await postJson(url(), completion("open"));
        assert.equal(r.status, 200, r.text);
        assert.equal(r.servedBy, at(live));
      }
    }
    assert.ok(await stat("cluster.infergate-pool/default/open-pool-picked.upstream_rq_retry") >= retries + 6, "each request first tried the dead endpoint");
  });

  it("reports the served endpoint to the picker (envoy.lb metadata on the response path) and to the client", async () => {
    answer = () => ({ endpoints: [at(DEAD), at(OPEN[0]!)] });
    const before = openPicker.requests.length;
    const res = await fetch(url(), { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(completion("open")) });
    await res.text();
    assert.equal(res.headers.get("x-served-by"), at(OPEN[0]!));
    assert.equal(res.headers.get("x-gateway-destination-endpoint-served"), at(OPEN[0]!));
    const seen = openPicker.requests[before]!;
    assert.equal(seen.responseMetadata?.["x-gateway-destination-endpoint-served"], at(OPEN[0]!));
    assert.equal(res.headers.get("x-picker-saw-served"), at(OPEN[0]!), "the picker's response header mutation is applied");
  });

  it("follows each request to the endpoint the picker chose (Envoy's upstream address), and counts it", async () => {
    // The picker always answers an endpoint other than infergate's own pick (the first it listed).
    answer = (req) => {
      const mine = req.headers["x-gateway-destination-endpoint"]!.split(",")[0];
      return { endpoints: [mine === at(OPEN[0]!) ? at(OPEN[1]!) : at(OPEN[0]!)] };
    };
    const name = "wasmcustom.infergate.served_elsewhere_total";
    const before = await stat(name);
    for (let i = 0; i < 6; i++) assert.equal((await postJson(url(), completion("open"))).status, 200);
    assert.equal(await stat(name) - before, 6, "every request was served elsewhere than infergate picked");
    // Where the picker agrees, nothing is counted (were infergate's pick the dead Pod, the picker
    // would answer a live one instead); pools with no picker never are.
    let disagreed = 0;
    answer = (req) => {
      const mine = req.headers["x-gateway-destination-endpoint"]!.split(",")[0]!;
      if (mine !== at(DEAD)) return { endpoints: [mine] };
      disagreed++;
      return { endpoints: [at(OPEN[0]!)] };
    };
    for (let i = 0; i < 4; i++) assert.equal((await postJson(url(), completion("open"))).status, 200);
    for (let i = 0; i < 4; i++) assert.equal((await postJson(url(), completion("plain"))).status, 200);
    assert.equal(await stat(name) - before, 6 + disagreed);
  });

  it("passes the picker's own refusals (429, 503) to the client", async () => {
    for (const status of [429, 503]) {
      answer = () => ({ status, body: `picker says ${status}` });
      const r = await postJson(url(), completion("open"));
      assert.equal(r.status, status);
      assert.equal(r.text, `picker says ${status}`);
    }
  });

  it("validates, rewrites and sheds before the callout, as without a picker", async () => {
    answer = () => ({ endpoints: [at(OPEN[0]!)] });
    const before = openPicker.requests.length;
    assert.equal((await postJson(url(), { model: "nope", prompt: "x" })).status, 404);
    assert.equal((await postJson(url(), '{"model": "open", "model": "open"}')).status, 400);
    assert.equal(openPicker.requests.length, before, "refused requests never reach the picker");
    const r = await postJson(url(), completion("open"));
    assert.equal(r.body.model, "open-target", "the model is rewritten to its target");
    assert.equal(JSON.parse(openPicker.requests.at(-1)!.body).model, "open-target", "the picker sees the rewritten body");
  });

  it("never calls a picker for a pool that names none", async () => {
    const before = openPicker.requests.length + closePicker.requests.length;
    for (let i = 0; i < 5; i++) assert.equal((await postJson(url(), completion("plain"))).servedBy, at(PLAIN[0]!));
    assert.equal(openPicker.requests.length + closePicker.requests.length, before);
    assert.equal(await stat("http.inference-0.ext_proc.infergate_picker.streams_started"), openPicker.requests.length + closePicker.requests.length);
  });

  it("with an unresolved reference: FailClose answers 503, FailOpen lets infergate pick", async () => {
    for (let i = 0; i < 3; i++) {
      const closed = await postJson(url(), completion("missing-close"));
      assert.equal(closed.status, 503, closed.text);
      const open = await postJson(url(), completion("missing-open"));
      assert.equal(open.status, 200, open.text);
      assert.equal(open.servedBy, at(MISSING[0]!));
    }
  });

  it("FailOpen: with the picker killed, infergate picks, bodies included; the picker is used again once it is back", async () => {
    answer = () => ({ endpoints: [at(OPEN[1]!)] });
    await openPicker.stop();
    // Envoy learns it from the first refused connection (outlier detection) or the next health
    // check (every second); requests sent before that get 503.
    const early: number[] = [];
    for (let i = 0; i < 10; i++) early.push((await postJson(url(), completion("open"))).status);
    assert.ok(early.filter((s) => s !== 200).length <= 2, `the first requests after the kill: ${early.join(" ")}`);
    await waitFor(async () => /failed_(active_hc|outlier_check)/.test(await pickerHost(OPEN_PICKER_PORT)), 3000, 50);
    const served = new Set<string>();
    for (const size of [10, 4096, 200_000]) {
      for (let i = 0; i < 4; i++) {
        const r = await postJson(url(), { model: "open", prompt: "x".repeat(size), max_tokens: 1 });
        assert.equal(r.status, 200, r.text);
        served.add(r.servedBy!);
      }
    }
    assert.ok([...served].every((s) => OPEN.map(at).includes(s)), `infergate's own picks: ${[...served].join(", ")}`);
    const seen = openPicker.requests.length;
    await openPicker.start();
    await waitFor(async () => (await postJson(url(), completion("open"))).servedBy === at(OPEN[1]!) && openPicker.requests.length > seen, 5000, 100);
  });

  it("FailOpen holds on the picker's later deaths as on its first: each time it comes back, is used, and dies again", async () => {
    answer = () => ({ endpoints: [at(OPEN[1]!)] });
    for (let death = 1; death <= 3; death++) {
      const seen = openPicker.requests.length;
      await waitFor(async () => (await postJson(url(), completion("open"))).servedBy === at(OPEN[1]!) && openPicker.requests.length > seen, 5000, 100);
      // Right away, as an orchestrator's restart loop does: Envoy's health update for the picker's
      // return is still fresh. (With Envoy's default 1 s update merge window, the death's update
      // waited for that window, and every request until then went to the dead picker: 10 of 10
      // failed from the second death on.)
      await openPicker.stop();
      const early: number[] = [];
      for (let i = 0; i < 10; i++) early.push((await postJson(url(), completion("open"))).status);
      assert.ok(early.filter((s) => s !== 200).length <= 2, `death ${death}, the first requests after it: ${early.join(" ")}`);
      await openPicker.start();
    }
  });

  it("FailClose: with the picker killed, 503 and nothing reaches a replica", async () => {
    await closePicker.stop();
    const before = stack.replicas.map((s) => s.stats().requests);
    for (let i = 0; i < 5; i++) assert.equal((await postJson(url(), completion("close"))).status, 503);
    await waitFor(async () => /failed_(active_hc|outlier_check)/.test(await pickerHost(CLOSE_PICKER_PORT)), 3000, 50);
    for (let i = 0; i < 5; i++) assert.equal((await postJson(url(), { model: "close", prompt: "x".repeat(200_000) })).status, 503);
    assert.deepEqual(stack.replicas.map((s) => s.stats().requests), before);
  });
});
