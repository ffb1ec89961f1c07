// Which requests the filter routes, and the headers it routes them with. Pure module: no host
// imports. The header names are the contract with the extension server's Envoy configuration
// (test/unit/contract.test.ts compares them with the server's definitions).
import { hexDigit } from "./hex";

/** Set to `ip:port[,ip:port...]`: the chosen endpoint, then fallbacks (override_host reads it). */
export const DESTINATION_HEADER = "x-gateway-destination-endpoint";
/** Names the pool whose cluster Envoy's route sends the request to. */
export const POOL_HEADER = "x-infergate-pool";
/** Set to one endpoint of each pool the route mirrors to; the mirror clusters' override_host reads it. */
export const MIRROR_HEADER = "x-infergate-mirror-endpoint";
/** Names the InferenceObjective whose priority the request asks for (read, never stripped). */
export const OBJECTIVE_HEADER = "x-gateway-inference-objective";
/** The Inference Extension's model override. A client could name any model with it, past the model
 * check, so the filter strips it and never honours it. */
export const MODEL_REWRITE_HEADER = "x-gateway-model-name-rewrite";

/** OpenAI-compatible routes whose JSON body carries a top-level `model`. Requests elsewhere pass
 * through untouched (minus any client-sent destination header) to the pool's plain route. */
export const INFERENCE_PATHS: string[] = [
  "/v1/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/v1/rerank", "/v1/score",
];

/**
 * Whether a request path is an inference route, after the normalization the model server applies
 * or may apply: uvicorn percent-decodes the whole path (so `/v1/chat/%63ompletions` and
 * `/v1%2Fchat%2Fcompletions` are served as chat completions), and Envoy may merge slashes and
 * resolve dot segments. Matching more spellings than the server accepts is safe (the request only
 * gets the model check); matching fewer would let a request skip the check.
 */
export function isInferencePath(path: string): bool {
  return INFERENCE_PATHS.includes(normalizePath(path));
}

/** The path without its query, percent-decoded, with empty and `.` segments dropped and `..`
 * segments resolved. Decoding is repeated until stable, so double encoding cannot hide a route. */
export function normalizePath(path: string): string {
  const q = path.indexOf("?");
  let bare = q >= 0 ? path.substring(0, q) : path;
  for (let round = 0; round < 4 && bare.includes("%"); round++) bare = percentDecode(bare);
  const segments = bare.split("/");
  const out = new Array<string>();
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i];
    if (s.length == 0 || s == ".") continue;
    if (s == "..") { if (out.length > 0) out.pop(); continue; }
    out.push(s);
  }
  return "/" + out.join("/");
}

function percentDecode(text: string): string {
  const bytes = String.UTF8.encode(text);
  const src = changetype<usize>(bytes);
  const n = bytes.byteLength;
  const out = new ArrayBuffer(n);
  const dst = changetype<usize>(out);
  let w = 0;
  for (let i = 0; i < n; i++) {
    const c = <i32>load<u8>(src + i);
    if (c == 0x25 && i + 2 < n) {
      const hi = hexDigit(<i32>load<u8>(src + i + 1));
      const lo = hexDigit(<i32>load<u8>(src + i + 2));
      if (hi >= 0 && lo >= 0) {
        store<u8>(dst + w++, <u8>((hi << 4) | lo));
        i += 2;
        continue;
      }
    }
    store<u8>(dst + w++, <u8>c);
  }
  return String.UTF8.decodeUnsafe(dst, w);
}
