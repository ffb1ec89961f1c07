// Which requests the filter routes, and the headers it routes them with. Pure module: no host
// imports. The header names are the contract with the extension server's Envoy configuration
// (test/unit/contract.test.ts compares them with the server's definitions).

/** Set to `ip:port[,ip:port...]`: the chosen endpoint, then fallbacks (override_host reads it). */
export const DESTINATION_HEADER = "x-gateway-destination-endpoint";
/** Names the pool whose cluster Envoy's route sends the request to. */
export const POOL_HEADER = "x-infergate-pool";

/** OpenAI-compatible routes whose JSON body carries a top-level `model`. Requests elsewhere pass
 * through untouched (minus any client-sent destination header) to the pool's plain route. */
export const INFERENCE_PATHS: string[] = [
  "/v1/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/v1/rerank", "/v1/score",
];

export function isInferencePath(path: string): bool {
  const q = path.indexOf("?");
  const bare = q >= 0 ? path.substring(0, q) : path;
  return INFERENCE_PATHS.includes(bare);
}
