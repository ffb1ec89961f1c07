// Where scripts/install-prometheus.mjs takes Prometheus and promtool from, before it installs
// anything: the variables, then PATH, then its own unpacked copy in .cache/prometheus/.
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { cachedBinDir, findPrometheus, onPath } from "../../scripts/install-prometheus.mjs";

describe("install-prometheus", () => {
  it("takes PROMETHEUS_BIN / PROMTOOL_BIN, then PATH, then its cache; only executables count", () => {
    const dir = mkdtempSync(join(tmpdir(), "infergate-path-"));
    try {
      writeFileSync(join(dir, "promtool"), "#!/bin/sh\n");
      chmodSync(join(dir, "promtool"), 0o755);
      writeFileSync(join(dir, "prometheus"), "not executable");
      assert.equal(onPath("promtool", `/nonexistent:${dir}`), join(dir, "promtool"));
      assert.equal(onPath("prometheus", dir), undefined, "a file that is not executable is not a tool");

      const found = findPrometheus({ PATH: dir });
      assert.equal(found.promtool, join(dir, "promtool"), "PATH");
      const cached = join(cachedBinDir, "prometheus");
      assert.equal(found.prometheus, existsSync(cached) ? cached : undefined, "the cache, or missing");

      assert.deepEqual(findPrometheus({ PATH: dir, PROMETHEUS_BIN: "/opt/p", PROMTOOL_BIN: "/opt/t" }), { prometheus: "/opt/p", promtool: "/opt/t" }, "the variables first");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
