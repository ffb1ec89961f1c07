// The benchmark's presets: `--full` is the seed's experiment at the time scale whose figures agree
// with the lab's (bench/results/seed-workload.md), and an option given on the command line wins.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FULL_TIME_SCALE, parseBenchOptions } from "../../bench/run.ts";

describe("benchmark options", () => {
  it("--full runs the seed's 3000 prompts at time scale 8", () => {
    const o = parseBenchOptions(["--full", "--modes", "round-robin,infergate"]);
    assert.equal(FULL_TIME_SCALE, 8);
    assert.equal(o.numPrompts, 3000);
    assert.equal(o.timeScale, 8);
  });

  it("an option given explicitly overrides the preset", () => {
    const o = parseBenchOptions(["--full", "--time-scale", "16", "--modes", "infergate"]);
    assert.equal(o.timeScale, 16);
    assert.equal(o.numPrompts, 3000);
  });

  it("--quick and --full are exclusive", () => {
    assert.throws(() => parseBenchOptions(["--quick", "--full"]), /exclusive/);
  });
});
