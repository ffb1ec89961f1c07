// The request headers and properties the filter reads and writes, encoded once for the host calls.
import { DESTINATION_HEADER, MIRROR_HEADER, MODEL_REWRITE_HEADER, OBJECTIVE_HEADER, POOL_HEADER } from "./core/routes";

export const DESTINATION = String.UTF8.encode(DESTINATION_HEADER);
export const POOL = String.UTF8.encode(POOL_HEADER);
export const METHOD = String.UTF8.encode(":method");
export const PATH = String.UTF8.encode(":path");
export const CONTENT_LENGTH = String.UTF8.encode("content-length");
export const CONTENT_ENCODING = String.UTF8.encode("content-encoding");
export const MIRROR = String.UTF8.encode(MIRROR_HEADER);
export const OBJECTIVE = String.UTF8.encode(OBJECTIVE_HEADER);
export const MODEL_REWRITE = String.UTF8.encode(MODEL_REWRITE_HEADER);
/** The property naming the cluster the request's route chose (a weighted route: the one it drew). */
export const ROUTE_CLUSTER = String.UTF8.encode("xds\0cluster_name");
/** The property naming the endpoint that serves the request (ip:port), once it is connected. */
export const UPSTREAM_ADDRESS = String.UTF8.encode("upstream\0address");
