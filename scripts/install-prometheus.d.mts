// Types of scripts/install-prometheus.mjs (plain Node, like install-envoy.mjs).
export interface PrometheusBins { prometheus: string; promtool: string }
export declare const cachedBinDir: string;
export declare function onPath(name: string, path?: string): string | undefined;
export declare function findPrometheus(env?: Record<string, string | undefined>): { prometheus: string | undefined; promtool: string | undefined };
export declare function installPrometheus(): PrometheusBins;
