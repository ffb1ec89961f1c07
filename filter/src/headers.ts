// The request headers the filter reads and writes, encoded once for the host calls.
import { DESTINATION_HEADER, POOL_HEADER, SERVED_HEADER } from "./core/routes";

export const DESTINATION = String.UTF8.encode(DESTINATION_HEADER);
export const POOL = String.UTF8.encode(POOL_HEADER);
export const SERVED = String.UTF8.encode(SERVED_HEADER);
export const METHOD = String.UTF8.encode(":method");
export const PATH = String.UTF8.encode(":path");
export const CONTENT_LENGTH = String.UTF8.encode("content-length");
export const CONTENT_ENCODING = String.UTF8.encode("content-encoding");
