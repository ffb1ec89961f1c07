// Reads the few samples routing needs out of a Prometheus text exposition. Written here rather
// than taken from a library because it runs for every endpoint every 50 ms: it scans lines once,
// keeps only the wanted metric names, and allocates nothing for the rest.

export interface Sample { labels: Record<string, string>; value: number }

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) labels[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
  return labels;
}

/** Samples of the `wanted` metric names (exact names, as exposed, e.g. with `_total`). */
export function parseSamples(text: string, wanted: ReadonlySet<string>): Map<string, Sample[]> {
  const out = new Map<string, Sample[]>();
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    if (line.length === 0 || line.charCodeAt(0) === 35 /* # */) continue;
    const brace = line.indexOf("{");
    const space = line.indexOf(" ");
    const nameEnd = brace >= 0 && (space < 0 || brace < space) ? brace : space;
    if (nameEnd <= 0) continue;
    const name = line.slice(0, nameEnd);
    if (!wanted.has(name)) continue;
    let labels: Record<string, string> = {};
    let rest = line.slice(nameEnd);
    if (brace === nameEnd) {
      const close = line.lastIndexOf("}");
      labels = parseLabels(line.slice(brace + 1, close));
      rest = line.slice(close + 1);
    }
    const value = Number(rest.trim().split(/\s+/)[0]);
    if (Number.isNaN(value)) continue;
    const list = out.get(name) ?? [];
    list.push({ labels, value });
    out.set(name, list);
  }
  return out;
}
