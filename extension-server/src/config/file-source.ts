// Standalone source of truth: a YAML file, re-read whenever it changes. A file that fails to
// parse or validate is rejected with its reasons and the previous good configuration stays.
import { readFileSync, statSync, unwatchFile, watchFile } from "node:fs";
import { ConfigError, parseRoutingConfig, type RoutingConfig } from "./routing-config.ts";

export interface FileSourceEvents {
  onConfig(config: RoutingConfig): void;
  onRejected(problems: string[]): void;
}

export function loadConfigFile(path: string): RoutingConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError([`${path}: cannot read: ${(err as Error).message}`]);
  }
  return parseRoutingConfig(text, path);
}

export class FileSource {
  private lastSignature = "";

  constructor(private readonly path: string, private readonly events: FileSourceEvents, private readonly pollMs = 100) {}

  /** Loads the file once (throwing on error: a bad file at start-up is fatal), then watches it. */
  start(): RoutingConfig {
    const config = loadConfigFile(this.path);
    this.lastSignature = this.signature();
    // Polling stat() is cheap and, unlike inotify, survives editors that replace the file.
    watchFile(this.path, { interval: this.pollMs, persistent: false }, () => this.reload());
    return config;
  }

  stop(): void {
    unwatchFile(this.path);
  }

  private signature(): string {
    try {
      const s = statSync(this.path);
      return `${s.mtimeMs}:${s.size}:${s.ino}`;
    } catch {
      return "missing";
    }
  }

  private reload(): void {
    const signature = this.signature();
    if (signature === this.lastSignature) return;
    this.lastSignature = signature;
    try {
      this.events.onConfig(loadConfigFile(this.path));
    } catch (err) {
      this.events.onRejected(err instanceof ConfigError ? err.problems : [String(err)]);
    }
  }
}
