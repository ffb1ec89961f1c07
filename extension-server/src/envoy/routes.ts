/** The header the filter sets to `ip:port` and Envoy's ORIGINAL_DST cluster connects to. */
export const DESTINATION_HEADER = "x-gateway-destination-endpoint";
