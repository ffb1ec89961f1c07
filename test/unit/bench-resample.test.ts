// The median over seeds that chance alone can give (bench/summary.ts resampledMedians, used by
// bench/lab/rr-chance.ts to judge one Envoy run per seed against the lab's draws).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { resampledMedians } from "../../bench/summary.ts";
import { seededRandom } from "../../bench/workload.ts";

describe("resampledMedians", () => {
  it("is the plain median when every group has one value", () => {
    const out = resampledMedians([[3], [1], [2]], 50, seededRandom(1));
    assert.equal(out.length, 50);
    assert.ok(out.every((m) => m === 2));
  });

  it("spans exactly the medians one value per group can give, sorted", () => {
    // Three groups of two: the median is 2 or 3 or 4 depending on the choices, never outside.
    const groups = [[1, 5], [2, 4], [3, 3]];
    const out = resampledMedians(groups, 2000, seededRandom(7));
    assert.deepEqual([...new Set(out)].sort(), [2, 3, 4].filter((m) => out.includes(m)));
    assert.ok(out.includes(2) && out.includes(3) && out.includes(4), `all of 2, 3, 4 occur: ${[...new Set(out)]}`);
    for (let i = 1; i < out.length; i++) assert.ok(out[i - 1]! <= out[i]!);
    // 1 and 2 chosen (1/4 of the time) → median 2; 5 and 4 → 4; otherwise 3.
    const share = (m: number): number => out.filter((x) => x === m).length / out.length;
    assert.ok(Math.abs(share(2) - 0.25) < 0.04 && Math.abs(share(4) - 0.25) < 0.04, `${share(2)} ${share(4)}`);
  });

  it("refuses an empty group", () => {
    assert.throws(() => resampledMedians([[1], []], 10, seededRandom(1)), /at least one value/);
  });
});
