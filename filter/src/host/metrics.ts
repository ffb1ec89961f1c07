// Counters the filter keeps in Envoy's stats store (visible on the admin /stats endpoint as
// `wasmcustom.infergate.*`, summed over worker threads): what it decided, per outcome and per
// endpoint, so an operator can see the routing without reading logs.
import { proxy_define_metric, proxy_increment_metric } from "./imports";

const COUNTER: i32 = 0;
const ID_OUT: usize = memory.data(4);
const ids = new Map<string, u32>();

function counterId(name: string): u32 {
  if (ids.has(name)) return ids.get(name);
  const bytes = String.UTF8.encode(name);
  store<u32>(ID_OUT, 0);
  proxy_define_metric(COUNTER, changetype<usize>(bytes), bytes.byteLength, ID_OUT);
  const id = load<u32>(ID_OUT);
  ids.set(name, id);
  return id;
}

export function count(name: string): void {
  proxy_increment_metric(counterId("infergate." + name), 1);
}
