// Reads `export const NAME = "value";` (or a number) from the filter's AssemblyScript sources, so
// tests compare the server's side of a contract with the filter's own definitions, not a copy.
import { readFileSync } from "node:fs";

export function filterConstants(path: string): Map<string, string> {
  const text = readFileSync(new URL(`../../${path}`, import.meta.url), "utf8");
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^export const ([A-Z_]+)(?::\s*\w+)?\s*=\s*("(?:[^"\\]|\\.)*"|[\d_]+);/gm)) {
    out.set(m[1]!, m[2]!.startsWith('"') ? JSON.parse(m[2]!) as string : m[2]!.replace(/_/g, ""));
  }
  return out;
}

/** Every counter constant of filter/src/counters.ts (a value ending in _total, as the filter names
 * it), so a new counter cannot escape the checks; the per-status rejected counters are apart. */
export function filterCounterConstants(): string[] {
  return [...filterConstants("filter/src/counters.ts").values()].filter((v) => /^[a-z_]+_total$/.test(v));
}

/** The filter's decision counters as Envoy's /stats/prometheus names them
 * (wasmcustom.infergate.rejected_429_total → infergate_rejected_429_total): every counter the filter
 * defines when its VM starts (filter/src/counters.ts `defineCounters`), one per rejected status. */
export function filterCounterNames(): string[] {
  const c = filterConstants("filter/src/counters.ts");
  const exposed = (name: string): string => (c.get("COUNTER_PREFIX")! + name).replace(/\./g, "_");
  return [
    ...filterCounterConstants().map(exposed),
    ...c.get("REJECTED_STATUSES")!.split(" ").map((status) => exposed(c.get("REJECTED")! + status + c.get("REJECTED_SUFFIX")!)),
  ];
}
