/** The header the filter sets to `ip:port[,ip:port...]`: the chosen endpoint, then fallbacks. */
export const DESTINATION_HEADER = "x-gateway-destination-endpoint";
/** The header the filter sets to the pool's name; the route picks the pool's cluster by it. */
export const POOL_HEADER = "x-infergate-pool";
