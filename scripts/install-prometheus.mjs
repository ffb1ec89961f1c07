#!/usr/bin/env node
// Finds Prometheus and promtool for the tests (the alerting rules' checks, and the dashboard's
// queries against a real Prometheus), installing them when they are missing, and prints their paths.
//
// In order: PROMETHEUS_BIN / PROMTOOL_BIN; `prometheus` and `promtool` on PATH; the copy this script
// installed before; else the Debian package `prometheus`, fetched with apt (its signed index) and
// unpacked into the project-local, git-ignored .cache/prometheus/. The package is unpacked rather
// than installed with `apt-get install`, because installing it also creates a system user and
// starts the packaged service: a Prometheus listening on every interface at :9090, which is the
// demo's metrics port. The binaries need only libc. A fresh Debian machine's empty package index is
// fetched first (`apt-get update`, as root). Without apt, install Prometheus 2.x yourself or set the
// two variables.
// Plain Node with no dependencies, like install-envoy.mjs.
import { execFileSync } from "node:child_process";
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const cacheDir = join(repo, ".cache", "prometheus");
/** Where the unpacked package's binaries go. */
export const cachedBinDir = join(cacheDir, "deb", "usr", "bin");
const TOOLS = ["prometheus", "promtool"];

/** The executable `name` on `path` (a PATH-like list), or undefined. */
export function onPath(name, path = process.env.PATH ?? "") {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, name);
    try { accessSync(file, constants.X_OK); return file; } catch { /* next */ }
  }
  return undefined;
}

/** Where each binary comes from, without installing anything: undefined for a missing one. */
export function findPrometheus(env = process.env) {
  const find = (name, variable) => env[variable] || onPath(name, env.PATH ?? "") ||
    (existsSync(join(cachedBinDir, name)) ? join(cachedBinDir, name) : undefined);
  return { prometheus: find("prometheus", "PROMETHEUS_BIN"), promtool: find("promtool", "PROMTOOL_BIN") };
}

const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], ...opts });

function candidate() {
  try {
    const m = /Candidate: (\S+)/.exec(run("apt-cache", ["policy", "prometheus"]));
    return m && m[1] !== "(none)" ? m[1] : undefined;
  } catch {
    return undefined;
  }
}

/** Fetches the Debian package `prometheus` and unpacks it into .cache/prometheus/deb. */
function installFromDebian() {
  if (!onPath("dpkg-deb") || !onPath("apt-get")) {
    throw new Error("Prometheus and promtool are missing and this is not a Debian-like system: install Prometheus 2.x, or set PROMETHEUS_BIN and PROMTOOL_BIN");
  }
  if (!candidate()) {
    if (process.getuid?.() !== 0) throw new Error("the apt package index has no `prometheus` package; run `apt-get update` as root (or install Prometheus yourself)");
    console.error("install-prometheus: apt-get update");
    run("apt-get", ["update", "-qq"], { stdio: ["ignore", "ignore", "inherit"] });
  }
  mkdirSync(cacheDir, { recursive: true });
  const work = mkdtempSync(join(cacheDir, ".download-"));
  try {
    console.error(`install-prometheus: fetching the Debian package prometheus ${candidate() ?? ""} into ${cacheDir}`);
    // As root, apt would otherwise warn that its sandbox user cannot write here.
    run("apt-get", ["download", "-qq", "-o", "APT::Sandbox::User=root", "prometheus"], { cwd: work, stdio: ["ignore", "ignore", "inherit"] });
    const deb = readdirSync(work).find((f) => /^prometheus_.*\.deb$/.test(f));
    if (!deb) throw new Error("apt-get download prometheus left no .deb");
    const unpacked = join(work, "root");
    run("dpkg-deb", ["-x", join(work, deb), unpacked]);
    for (const tool of TOOLS) accessSync(join(unpacked, "usr", "bin", tool), constants.X_OK);
    // Moved into place in one step. Another process may have finished first, which is as good
    // (and its copy may be in use); only a partial copy is replaced.
    const complete = () => TOOLS.every((t) => existsSync(join(cachedBinDir, t)));
    if (!complete()) {
      rmSync(join(cacheDir, "deb"), { recursive: true, force: true });
      try { renameSync(unpacked, join(cacheDir, "deb")); } catch (err) { if (!complete()) throw err; }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Paths of `prometheus` and `promtool`, installing them first if either is missing. */
export function installPrometheus() {
  let found = findPrometheus();
  if (!found.prometheus || !found.promtool) {
    installFromDebian();
    // A tool found elsewhere stays; the unpacked package fills in what was missing.
    found = { prometheus: found.prometheus ?? join(cachedBinDir, "prometheus"), promtool: found.promtool ?? join(cachedBinDir, "promtool") };
  }
  for (const [name, file] of Object.entries(found)) {
    const version = run(file, ["--version"], { stdio: ["ignore", "pipe", "pipe"] });
    if (!/version 2\.|version 3\./.test(version)) throw new Error(`${name} at ${file}: unexpected version: ${version.split("\n")[0]}`);
  }
  return found;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { prometheus, promtool } = installPrometheus();
  console.log(prometheus);
  console.log(promtool);
}
