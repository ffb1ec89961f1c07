// The filter's compiled core (build/core.wasm with its JS bindings): the same decision code Envoy
// runs. Rebuilt first when filter/ is newer than the build, so the lab never measures stale code.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { scratchDir } from "../../test/support/scratch-dir.ts";

const repo = new URL("../..", import.meta.url).pathname;

export interface Core {
  routerCreate(seed: bigint): number;
  routerEndpoints(handle: number, addresses: string): void;
  /** Absent from cores built before the workers shared their picks (--baseline). */
  routerShareMemory?(handle: number, other: number): void;
  routerConfigure(handle: number, text: string): string;
  routerRoute(handle: number, body: Uint8Array, loads: Float64Array): string;
}

function newest(path: string): number {
  const s = statSync(path);
  return s.isDirectory() ? Math.max(s.mtimeMs, ...readdirSync(path).map((f) => newest(join(path, f)))) : s.mtimeMs;
}

let loaded: Core | undefined;

export async function loadCore(): Promise<Core> {
  if (loaded) return loaded;
  const wasm = join(repo, "build", "core.wasm");
  const inputs = Math.max(newest(join(repo, "filter")), statSync(join(repo, "asconfig.json")).mtimeMs);
  if (!existsSync(wasm) || statSync(wasm).mtimeMs < inputs) {
    console.error("building the filter's core (asc filter/src/core/exports.ts --target core)…");
    execFileSync("npx", ["asc", "filter/src/core/exports.ts", "--target", "core"], { cwd: repo, stdio: "inherit" });
  }
  loaded = (await import(join(repo, "build", "core.js"))) as Core;
  return loaded;
}

/** The core as an earlier commit had it, built into a temporary directory, for side-by-side runs
 * (`git archive <commit> filter asconfig.json`, then the same `asc` build). */
export async function loadCoreAt(commit: string): Promise<Core> {
  const dir = scratchDir("infergate-core");
  const archive = execFileSync("git", ["archive", commit, "filter", "asconfig.json"], { cwd: repo, maxBuffer: 64 << 20 });
  execFileSync("tar", ["-x", "-C", dir], { input: archive });
  writeFileSync(join(dir, "package.json"), '{"type":"module"}\n');
  console.error(`building the filter's core at ${commit} in ${dir}…`);
  execFileSync(join(repo, "node_modules", ".bin", "asc"), ["filter/src/core/exports.ts", "--target", "core"], { cwd: dir, stdio: "inherit" });
  return (await import(join(dir, "build", "core.js"))) as Core;
}
