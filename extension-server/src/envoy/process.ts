// Runs Envoy as a child process: writes the bootstrap, starts the pinned binary, waits until its
// admin endpoint reports LIVE, and stops it (with its process group) on close.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ENVOY_VERSION, envoyPath } from "../../../scripts/install-envoy.mjs";

/** The pinned Envoy version (one definition: scripts/install-envoy.mjs). */
export { ENVOY_VERSION };

/** ENVOY_BIN, else the binary scripts/install-envoy.mjs put in .cache/. */
export function envoyBinary(): string {
  const fromEnv = process.env.ENVOY_BIN;
  if (fromEnv) return fromEnv;
  if (!existsSync(envoyPath)) throw new Error(`Envoy is not installed: run 'node scripts/install-envoy.mjs' (expected ${envoyPath})`);
  return envoyPath;
}

export interface EnvoyOptions {
  bootstrap: Record<string, unknown>;
  concurrency?: number;
  logLevel?: string;
  /** Receives Envoy's log lines (stderr). */
  onLog?: (line: string) => void;
}

export class EnvoyProcess {
  private exited: Promise<number | null>;
  readonly logs: string[] = [];

  /** Envoy's admin address, read from the file Envoy writes once it listens (the bootstrap may ask for port 0). */
  adminAddress = "";

  private constructor(private readonly child: ChildProcess, readonly bootstrapPath: string, private readonly adminAddressPath: string) {
    this.exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
  }

  static async start(opts: EnvoyOptions): Promise<EnvoyProcess> {
    const dir = mkdtempSync(join(tmpdir(), "infergate-envoy-"));
    const bootstrapPath = join(dir, "bootstrap.json");
    const adminAddressPath = join(dir, "admin-address");
    writeFileSync(bootstrapPath, JSON.stringify(opts.bootstrap, null, 2));
    const child = spawn(envoyBinary(), [
      "-c", bootstrapPath,
      "--concurrency", String(opts.concurrency ?? 2),
      "--log-level", opts.logLevel ?? "warn",
      // Several Envoys may run side by side (tests): no shared-memory hot-restart region.
      "--disable-hot-restart",
      "--admin-address-path", adminAddressPath,
    ], { stdio: ["ignore", "ignore", "pipe"], detached: true });
    const envoy = new EnvoyProcess(child, bootstrapPath, adminAddressPath);
    let partial = "";
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        if (envoy.logs.length < 5000) envoy.logs.push(line);
        opts.onLog?.(line);
      }
    });
    await envoy.waitLive();
    return envoy;
  }

  get pid(): number | undefined { return this.child.pid; }

  private async waitLive(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exitCode: number | null | undefined;
    void this.exited.then((c) => { exitCode = c; });
    while (Date.now() < deadline) {
      if (exitCode !== undefined) throw new Error(`Envoy exited with ${exitCode} before becoming ready:\n${this.logs.slice(-30).join("\n")}`);
      try {
        this.adminAddress ||= readFileSync(this.adminAddressPath, "utf8").trim();
        const res = await fetch(`http://${this.adminAddress}/ready`);
        if (res.ok && (await res.text()).trim() === "LIVE") return;
      } catch { /* not listening yet */ }
      await new Promise((r) => setTimeout(r, 50));
    }
    await this.stop();
    throw new Error(`Envoy did not become ready within ${timeoutMs} ms:\n${this.logs.slice(-30).join("\n")}`);
  }

  /** Reads one admin endpoint (e.g. "stats?filter=wasm"). */
  async admin(path: string): Promise<string> {
    const res = await fetch(`http://${this.adminAddress}/${path}`);
    return res.text();
  }

  /** The bound address of each listener, by listener name (ports may have been 0 in the bootstrap). */
  /** Copies sent and failed per mirror cluster (named `...-mirror-<n>`), from Envoy's stats. */
  async mirrorStats(): Promise<Map<string, { sent: number; failed: number }>> {
    const filter = encodeURIComponent("^cluster\\..+-mirror-[0-9]+\\.upstream_rq_(total|5xx)$");
    const body = JSON.parse(await this.admin(`stats?format=json&filter=${filter}`)) as { stats?: Array<{ name?: string; value?: number }> };
    const out = new Map<string, { sent: number; failed: number }>();
    for (const { name, value } of body.stats ?? []) {
      const m = /^cluster\.(.+)\.upstream_rq_(total|5xx)$/.exec(name ?? "");
      if (!m || typeof value !== "number") continue;
      const entry = out.get(m[1]!) ?? { sent: 0, failed: 0 };
      if (m[2] === "total") entry.sent = value; else entry.failed = value;
      out.set(m[1]!, entry);
    }
    return out;
  }

  async listenerAddresses(): Promise<Map<string, string>> {
    const body = JSON.parse(await this.admin("listeners?format=json")) as {
      listener_statuses?: Array<{ name: string; local_address?: { socket_address?: { address: string; port_value: number } } }>;
    };
    const out = new Map<string, string>();
    for (const l of body.listener_statuses ?? []) {
      const a = l.local_address?.socket_address;
      if (a) out.set(l.name, `${a.address}:${a.port_value}`);
    }
    return out;
  }

  /** Stops Envoy (its process group) and removes the directory holding its bootstrap. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      try { process.kill(-this.child.pid!, "SIGTERM"); } catch { /* already gone */ }
      const timer = setTimeout(() => { try { process.kill(-this.child.pid!, "SIGKILL"); } catch { /* gone */ } }, 5000);
      await this.exited;
      clearTimeout(timer);
    }
    rmSync(dirname(this.bootstrapPath), { recursive: true, force: true });
  }
}
