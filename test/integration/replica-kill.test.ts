// A replica SIGKILLed under a burst: the snapshot still lists it for up to a scrape interval, so
// requests keep being sent there and their connections are refused. Envoy retries each on the
// next endpoint the filter listed; the pool cluster's retry budget must let all of them retry at
// once (Envoy's default allows 3 concurrent retries per cluster, and the rest get a 503).
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { startReplicaProcess } from "../support/faults.ts";
import { chatPoolYaml, postJson, setReplicaLoad, SIM_PORT, startStack, waitFor, type Stack } from "../support/stack.ts";

const LIVE = ["127.0.9.11", "127.0.9.12"];
const DOOMED = "127.0.9.13";
const BURST = 24;

const CONFIG = chatPoolYaml([...LIVE, DOOMED], "chat");

describe("a replica killed under a burst", () => {
  let stack: Stack;
  let doomed: ChildProcess;

  before(async () => {
    doomed = await startReplicaProcess(DOOMED, "chat");
    stack = await startStack(CONFIG, LIVE.map((ip) => ({ ip, models: ["chat"] })));
  });
  after(async () => {
    doomed?.kill("SIGKILL");
    await stack?.stop();
  });

  it(`answers all of ${BURST} concurrent requests fired right after the SIGKILL`, async () => {
    // The doomed replica looks best, so the burst goes there first and every request has to retry.
    for (const ip of LIVE) await setReplicaLoad(`${ip}:${SIM_PORT}`, { waiting: 20 });
    await waitFor(async () => (await postJson(`${stack.inferenceUrl}/v1/completions`, { model: "chat", prompt: "warm", max_tokens: 1 })).servedBy === `${DOOMED}:${SIM_PORT}`, 3000);
    doomed.kill("SIGKILL");
    const results = await Promise.all(Array.from({ length: BURST }, (_, i) =>
      postJson(`${stack.inferenceUrl}/v1/completions`, { model: "chat", prompt: `burst ${i}`, max_tokens: 1 })));
    const stats = await stack.server.envoy!.admin("stats?filter=upstream_rq_retry");
    assert.deepEqual(results.filter((r) => r.status !== 200).map((r) => `${r.status} ${r.text.slice(0, 80)}`), [], stats);
    assert.ok(results.every((r) => LIVE.some((ip) => r.servedBy === `${ip}:${SIM_PORT}`)));
    assert.match(stats, /picked\.upstream_rq_retry: [1-9]/, "the burst did go to the dead replica first");
    assert.doesNotMatch(stats, /picked\.upstream_rq_retry_overflow: [1-9]/);
  });
});
