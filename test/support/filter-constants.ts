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

/** The filter's decision counters as Envoy's /stats/prometheus names them
 * (wasmcustom.infergate.rejected.429 → infergate_rejected_429): one pattern per counter. */
export function filterCounterPatterns(): RegExp[] {
  const counters = filterConstants("filter/src/counters.ts");
  const prefix = counters.get("COUNTER_PREFIX")!;
  return [...counters].filter(([k]) => k !== "COUNTER_PREFIX")
    .map(([, n]) => new RegExp(`^${(prefix + n).replace(/\./g, "_")}${n.endsWith(".") ? "\\d+" : ""}$`));
}
