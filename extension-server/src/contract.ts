// Names the extension server and the filter (filter/src) must agree on. The filter keeps its own
// copies (AssemblyScript cannot import these); a contract test compares the two sides.

/** Request header the filter sets to `ip:port[,ip:port...]`: the chosen endpoint, then fallbacks.
 * The pool cluster's override_host policy connects to it. */
export const DESTINATION_HEADER = "x-gateway-destination-endpoint";

/** Request header the filter sets to the snapshot's pool name; the route picks the pool's cluster by it. */
export const POOL_HEADER = "x-infergate-pool";

/** Request header the filter sets to one endpoint of each pool the request's route mirrors to; the
 * mirror clusters' override_host reads it. */
export const MIRROR_HEADER = "x-infergate-mirror-endpoint";

/** Request header naming the InferenceObjective whose priority a request asks for. */
export const OBJECTIVE_HEADER = "x-gateway-inference-objective";

/** The Inference Extension's model override header; the filter strips it (never honoured). */
export const MODEL_REWRITE_HEADER = "x-gateway-model-name-rewrite";

/** The filter's name, Wasm root_id and vm_id, and the name of its ECDS resource. */
export const FILTER_NAME = "infergate";

/** First line of every routing snapshot (filter/src/core/snapshot.ts documents the format). */
export const SNAPSHOT_FORMAT_HEADER = "infergate-snapshot 1";

/** First line of every load text: the live part of the snapshot, pushed on its own (same file). */
export const LOAD_FORMAT_HEADER = "infergate-load 1";

/** The gRPC service and method the filter's root contexts stream the load text from
 * (proto/infergate/load.proto; filter/src/load_channel.ts). */
export const LOAD_SERVICE = "infergate.load.v1.LoadChannel";
export const LOAD_METHOD = "Watch";

/**
 * Every name that enters the snapshot (model, target, pool, LoRA adapter) matches this: no
 * whitespace or control characters (the snapshot is space- and newline-separated), no `,` or `=`
 * (an endpoint's attributes are `key=a,b`), not starting with `#` (a comment line).
 */
export const SNAPSHOT_NAME = /^[A-Za-z0-9_][A-Za-z0-9._:/@+-]{0,252}$/;

/** The endpoint picker protocol's dynamic metadata namespace: the picker's answer under
 * DESTINATION_HEADER, and the endpoint that served the request under SERVED_ENDPOINT_KEY. */
export const LB_METADATA_NAMESPACE = "envoy.lb";

/** The served endpoint's key in LB_METADATA_NAMESPACE, and the response header that reports it. */
export const SERVED_ENDPOINT_KEY = "x-gateway-destination-endpoint-served";
