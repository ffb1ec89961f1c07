#!/usr/bin/env node
// Makes a fresh clone runnable: installs npm packages, builds the Wasm filter and installs the
// pinned Envoy. Runs before `npm start` and `npm test`; each step is skipped when already done.
// Plain Node with no dependencies, so it can run before `npm install`.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { installEnvoy } from "./install-envoy.mjs";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const run = (cmd, args) => execFileSync(cmd, args, { cwd: repo, stdio: "inherit" });

function newestMtime(path) {
  const s = statSync(path);
  if (!s.isDirectory()) return s.mtimeMs;
  return Math.max(s.mtimeMs, ...readdirSync(path).map((f) => newestMtime(join(path, f))));
}

function installPackages() {
  const marker = join(repo, "node_modules", ".package-lock.json");
  if (existsSync(marker) && statSync(marker).mtimeMs >= statSync(join(repo, "package-lock.json")).mtimeMs) return;
  run("npm", ["ci", "--no-audit", "--no-fund"]);
}

/** The filter Envoy loads, and its pure core with JS bindings for tests and simulations. */
const WASM_TARGETS = [
  { entry: "filter/src/index.ts", target: "release", out: "infergate.wasm" },
  { entry: "filter/src/core/exports.ts", target: "core", out: "core.wasm" },
];

function buildFilter() {
  const inputs = Math.max(newestMtime(join(repo, "filter")), statSync(join(repo, "asconfig.json")).mtimeMs);
  for (const { entry, target, out } of WASM_TARGETS) {
    const wasm = join(repo, "build", out);
    if (existsSync(wasm) && statSync(wasm).mtimeMs >= inputs) continue;
    run("npx", ["asc", entry, "--target", target]);
  }
}

installPackages();
buildFilter();
console.error(`envoy: ${installEnvoy()}`);
