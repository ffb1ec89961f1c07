// --log-level: "warn" leaves out only the routine lines (a configuration loaded with nothing left
// out, a status written) and keeps every problem; "info" keeps everything. The lines are the ones
// the server and the Kubernetes source write.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { isRoutine, leveledLog } from "../../extension-server/src/log-level.ts";

const routine = [
  "loaded kubernetes: 1 pools, 1 models, snapshot version 3",
  "InferencePool default/reasoning-pool status: Accepted=True, ResolvedRefs=True",
  "InferenceObjective default/batch status: Accepted=True",
  "InferencePool default/shared status: infergate's entry removed",
];
const problems = [
  "loaded kubernetes: 1 pools, 0 models, snapshot version 4; left out:\n  kubernetes: InferenceModel default/m: spec.poolRef: Required",
  "rejected kubernetes; keeping the previous configuration:\n  no InferencePool",
  "watch pods failed, retrying: Error: connect ECONNREFUSED",
  "InferencePool default/p status update failed: HttpError 403",
  "InferencePool default/p: controller istio.io/gateway-controller reports on Gateway default/gw; infergate leaves that status to it",
  "envoy node-1 rejected ECDS version 3: bad config",
  "not watching inferencepools.inference.networking.k8s.io/v1: 404",
];

describe("--log-level", () => {
  it("classifies the server's routine lines, and nothing else, as routine", () => {
    for (const line of routine) assert.ok(isRoutine(line), line);
    for (const line of problems) assert.ok(!isRoutine(line), line);
  });

  it("warn drops the routine lines; info writes every line", () => {
    for (const [level, expected] of [["warn", problems], ["info", [...routine, ...problems]]] as const) {
      const written: string[] = [];
      const log = leveledLog(level, (l) => written.push(l));
      for (const line of [...routine, ...problems]) log(line);
      assert.deepEqual(written.sort(), [...expected].sort(), level);
    }
  });

  it("the command line refuses another level", () => {
    const main = new URL("../../extension-server/src/main.ts", import.meta.url).pathname;
    const run = spawnSync(process.execPath, ["--import", "tsx", main, "kubernetes", "--insecure", "--log-level=debug"], { encoding: "utf8" });
    assert.equal(run.status, 2);
    assert.match(run.stderr, /--log-level must be one of info, warn/);
  });
});
