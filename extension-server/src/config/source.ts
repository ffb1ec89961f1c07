// Where the routing configuration comes from: a YAML file (file-source.ts) or the Kubernetes API
// (kube-source.ts). The composition root (server.ts) picks one; both report through the same events.
import type { RoutingConfig } from "./routing-config.ts";

export interface SourceEvents {
  /** A new valid configuration. */
  onConfig(config: RoutingConfig): void;
  /** A change was rejected; the previous configuration stays. Every problem names its object and field. */
  onRejected(problems: string[]): void;
  log?(message: string): void;
}

export interface ConfigSource {
  /** What the source reads, for log lines ("pool.yaml", "the cluster's resources"). */
  readonly description: string;
  /**
   * Reads the first configuration and reports it through `onConfig`, then follows changes.
   * Rejects with a ConfigError when there is no valid configuration to start with.
   */
  start(events: SourceEvents): Promise<void>;
  stop(): Promise<void>;
}
