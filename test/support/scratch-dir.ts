// Temporary directories for tests and benchmarks, removed when the process exits however it exits
// (a failed assertion, a thrown error): a machine that runs the suite again and again must not fill
// its disk with Envoy binaries, etcd data and configs left behind.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const made = new Set<string>();

function removeAll(): void {
  for (const dir of made) {
    try { rmSync(dir, { recursive: true, force: true }); } catch { /* a child may still hold it; best effort */ }
  }
  made.clear();
}

/** A fresh directory under the system's temporary directory, named `<prefix>-XXXXXX`. */
export function scratchDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  if (made.size === 0) process.once("exit", removeAll);
  made.add(dir);
  return dir;
}
