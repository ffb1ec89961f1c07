// Reads the few samples routing needs out of a Prometheus text exposition. Written here rather
// than taken from a library because it runs for every endpoint every 50 ms and must stay cheap on
// a hostile replica's output: it scans lines once, keeps only the wanted metric names, skips
// lines longer than MAX_LINE_CHARS, reads labels with a linear scanner, and keeps at most
// MAX_SAMPLES_PER_NAME samples per name.

export interface Sample { labels: Record<string, string>; value: number }

const MAX_LINE_CHARS = 64 * 1024;
const MAX_SAMPLES_PER_NAME = 1024;

const isNameStart = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95; // A-Z a-z _
const isNameChar = (c: number): boolean => isNameStart(c) || (c >= 48 && c <= 57); // ... 0-9
const isBlank = (c: number): boolean => c === 32 || c === 9;

/**
 * Reads `name="value",...}` from `start` (just after `{`) into `labels`, decoding the text
 * format's escapes (\\, \", \n). Returns the index after the closing `}`, or -1 if malformed.
 * Every character is looked at once: linear in the line's length.
 */
function scanLabels(line: string, start: number, labels: Record<string, string>): number {
  let i = start;
  for (;;) {
    while (i < line.length && isBlank(line.charCodeAt(i))) i++;
    if (i >= line.length) return -1;
    if (line.charCodeAt(i) === 125 /* } */) return i + 1;
    const nameStart = i;
    if (!isNameStart(line.charCodeAt(i))) return -1;
    while (i < line.length && isNameChar(line.charCodeAt(i))) i++;
    const name = line.slice(nameStart, i);
    if (line.charCodeAt(i) !== 61 /* = */ || line.charCodeAt(i + 1) !== 34 /* " */) return -1;
    i += 2;
    const parts: string[] = [];
    let runStart = i;
    for (;;) {
      if (i >= line.length) return -1;
      const c = line.charCodeAt(i);
      if (c === 34 /* " */) break;
      if (c === 92 /* \ */) {
        parts.push(line.slice(runStart, i));
        const next = line[i + 1];
        if (next === undefined) return -1;
        parts.push(next === "n" ? "\n" : next);
        i += 2;
        runStart = i;
        continue;
      }
      i++;
    }
    parts.push(line.slice(runStart, i));
    labels[name] = parts.join("");
    i++; // the closing quote
    while (i < line.length && isBlank(line.charCodeAt(i))) i++;
    if (line.charCodeAt(i) === 44 /* , */) i++;
  }
}

/** A sample value: a Go float, or Prometheus' +Inf, -Inf, NaN. Undefined if it is none of them. */
function parseValue(token: string): number | undefined {
  if (token === "+Inf" || token === "Inf") return Infinity;
  if (token === "-Inf") return -Infinity;
  if (token === "NaN") return NaN;
  const v = Number(token);
  return token.length > 0 && !Number.isNaN(v) ? v : undefined;
}

/** Samples of the `wanted` metric names (exact names, as exposed, e.g. with `_total`). */
export function parseSamples(text: string, wanted: ReadonlySet<string>): Map<string, Sample[]> {
  const out = new Map<string, Sample[]>();
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    const lineStart = start;
    start = end + 1;
    if (end - lineStart > MAX_LINE_CHARS || end === lineStart || text.charCodeAt(lineStart) === 35 /* # */) continue;
    let i = lineStart;
    while (i < end && (isNameChar(text.charCodeAt(i)) || text.charCodeAt(i) === 58 /* : */)) i++;
    const name = text.slice(lineStart, i);
    if (!wanted.has(name)) continue;
    const list = out.get(name) ?? [];
    if (list.length >= MAX_SAMPLES_PER_NAME) continue;
    const line = text.slice(i, end);
    const labels: Record<string, string> = {};
    let at = 0;
    if (line.charCodeAt(0) === 123 /* { */) {
      at = scanLabels(line, 1, labels);
      if (at < 0) continue;
    }
    const rest = line.slice(at).trimStart();
    const space = rest.search(/\s/);
    const value = parseValue(space < 0 ? rest : rest.slice(0, space));
    if (value === undefined) continue;
    list.push({ labels, value });
    out.set(name, list);
  }
  return out;
}
