// Temporary directories made by tests and benchmarks are gone once their process exits, whether it
// ends normally or by an uncaught error (a failed test run must not leave its Envoy copies behind).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const MODULE = fileURLToPath(new URL("../support/scratch-dir.ts", import.meta.url));

function runChild(code: string): { dirs: string[]; status: number | null } {
  const script = `import { writeFileSync } from "node:fs"; import { scratchDir } from ${JSON.stringify(MODULE)};
const a = scratchDir("infergate-scratch-test"); const b = scratchDir("infergate-scratch-test");
writeFileSync(a + "/f", "x"); console.log(a); console.log(b); ${code}`;
  const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8" });
  return { dirs: r.stdout.trim().split("\n").filter(Boolean), status: r.status };
}

describe("scratchDir", () => {
  it("removes every directory it made when the process exits normally", () => {
    const { dirs, status } = runChild("");
    assert.equal(status, 0);
    assert.equal(dirs.length, 2);
    assert.notEqual(dirs[0], dirs[1]);
    for (const d of dirs) assert.equal(existsSync(d), false, d);
  });

  it("removes them when the process dies of an uncaught error", () => {
    const { dirs, status } = runChild('throw new Error("boom");');
    assert.notEqual(status, 0);
    assert.equal(dirs.length, 2);
    for (const d of dirs) assert.equal(existsSync(d), false, d);
  });
});
