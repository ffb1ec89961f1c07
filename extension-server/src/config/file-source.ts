// Standalone source of truth: a YAML file, re-read whenever it changes. A document that fails to
// parse or validate is left out and named (routing-config.ts); the rest applies. A file with no
// valid InferencePool is rejected: at start-up that is fatal (standalone Envoy needs a pool), later
// the previous configuration stays.
import { readFileSync, statSync, unwatchFile, watchFile } from "node:fs";
import { ConfigError, parseRoutingConfig, type RoutingConfig } from "./routing-config.ts";
import type { ConfigSource, SourceEvents } from "./source.ts";

export function loadConfigFile(path: string): RoutingConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError([`${path}: cannot read: ${(err as Error).message}`]);
  }
  const config = parseRoutingConfig(text, path);
  if (config.pools.length === 0) throw new ConfigError([...config.problems.map((p) => p.text), `${path}: no valid InferencePool`]);
  return config;
}

export class FileSource implements ConfigSource {
  private lastSignature = "";
  private watching = false;

  constructor(private readonly path: string, private readonly pollMs = 100) {}

  get description(): string { return this.path; }

  /** Loads the file once (a bad file at start-up is fatal), then watches it. */
  async start(events: SourceEvents): Promise<void> {
    const config = loadConfigFile(this.path);
    this.lastSignature = this.signature();
    events.onConfig(config);
    // Polling stat() is cheap and, unlike inotify, survives editors that replace the file.
    watchFile(this.path, { interval: this.pollMs, persistent: false }, () => this.reload(events));
    this.watching = true;
  }

  async stop(): Promise<void> {
    if (this.watching) unwatchFile(this.path);
    this.watching = false;
  }

  private signature(): string {
    try {
      const s = statSync(this.path);
      return `${s.mtimeMs}:${s.size}:${s.ino}`;
    } catch {
      return "missing";
    }
  }

  private reload(events: SourceEvents): void {
    const signature = this.signature();
    if (signature === this.lastSignature) return;
    this.lastSignature = signature;
    try {
      events.onConfig(loadConfigFile(this.path));
    } catch (err) {
      events.onRejected(err instanceof ConfigError ? err.problems : [String(err)]);
    }
  }
}
