// Types of scripts/install-envoy.mjs (plain Node, so it runs before `npm install`).
export declare const ENVOY_VERSION: string;
export declare const envoyPath: string;
export declare function installEnvoy(): string;
