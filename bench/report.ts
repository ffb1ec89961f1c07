// Writes a benchmark run: result.json (options, summaries, raw records), report.md (tables and
// ratios against the baseline mode) and ttft.svg (the TTFT distribution of each mode).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { distribution, type RequestRecord, type Summary } from "./summary.ts";

export interface ModeResult { name: string; description: string; summary: Summary; records: RequestRecord[]; preemptions?: number; prefixHitRate?: number }

const COLORS = ["#d62728", "#ff7f0e", "#1f77b4", "#2ca02c", "#9467bd"];

/** Empirical CDF of each mode's TTFT on a log-scaled x axis. */
export function ttftChartSvg(modes: ModeResult[]): string {
  const width = 720, height = 400, left = 70, right = 20, top = 30, bottom = 60;
  const all = modes.flatMap((m) => m.records.filter((r) => r.ok).map((r) => r.ttftMs)).filter((v) => v > 0);
  const lo = Math.log10(Math.max(1, Math.min(...all)) * 0.8);
  const hi = Math.log10(Math.max(...all) * 1.2);
  const x = (ms: number) => left + ((Math.log10(Math.max(ms, 1)) - lo) / (hi - lo)) * (width - left - right);
  const y = (p: number) => top + (1 - p) * (height - top - bottom);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="18" text-anchor="middle" font-size="14">TTFT distribution per mode (cumulative share of requests)</text>`,
  ];
  for (let decade = Math.ceil(lo); decade <= Math.floor(hi); decade++) {
    const ms = 10 ** decade;
    parts.push(`<line x1="${x(ms)}" y1="${top}" x2="${x(ms)}" y2="${height - bottom}" stroke="#ddd"/>`,
      `<text x="${x(ms)}" y="${height - bottom + 16}" text-anchor="middle">${ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`}</text>`);
  }
  for (const p of [0, 0.25, 0.5, 0.75, 0.9, 0.99, 1]) {
    parts.push(`<line x1="${left}" y1="${y(p)}" x2="${width - right}" y2="${y(p)}" stroke="#eee"/>`,
      `<text x="${left - 6}" y="${y(p) + 4}" text-anchor="end">${Math.round(p * 100)}%</text>`);
  }
  parts.push(`<text x="${width / 2}" y="${height - 20}" text-anchor="middle">time to first token (log scale)</text>`);
  modes.forEach((m, i) => {
    const values = m.records.filter((r) => r.ok).map((r) => r.ttftMs).sort((a, b) => a - b);
    const points = values.map((v, k) => `${x(v).toFixed(1)},${y((k + 1) / values.length).toFixed(1)}`);
    const color = COLORS[i % COLORS.length]!;
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${x(values[0] ?? 1).toFixed(1)},${y(0)} ${points.join(" ")}"/>`,
      `<rect x="${left + 10}" y="${top + 8 + i * 18}" width="14" height="4" fill="${color}"/>`,
      `<text x="${left + 30}" y="${top + 14 + i * 18}">${escapeXml(m.name)}</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n");
}

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

const ms = (v: number) => v.toFixed(0);

/** TTFT over the requests after the first `skip` (those that started together), per mode. */
function steadyStateRows(modes: ModeResult[], baseline: string, skip: number): string[] {
  const base = modes.find((m) => m.name === baseline);
  const view = (m: ModeResult) => distribution(m.records.filter((r) => r.ok && r.index >= skip).map((r) => r.ttftMs));
  const b = base ? view(base) : undefined;
  return modes.map((m) => {
    const d = view(m);
    const ratio = (x: number, y: number | undefined) => (y ? (x / y).toFixed(2) : "–");
    return `| ${m.name} | ${ms(d.mean)} | ${ms(d.median)} | ${ms(d.p99)} | ${ratio(d.mean, b?.mean)} | ${ratio(d.p99, b?.p99)} |`;
  });
}

export function markdownReport(title: string, options: Record<string, unknown>, modes: ModeResult[], baseline: string, command: string, extra = ""): string {
  // The start-up burst is a closed loop's: with Poisson arrivals there is none to leave out.
  const closedLoop = String(options.requestRate ?? "Infinity") === "Infinity";
  const concurrency = closedLoop ? Number(options.concurrency ?? 0) : 0;
  const base = modes.find((m) => m.name === baseline)?.summary;
  const rows = modes.map((m) => {
    const s = m.summary;
    return `| ${m.name} | ${s.completed} | ${s.failed} | ${s.shed} | ${ms(s.ttft.mean)} | ${ms(s.ttft.median)} | ${ms(s.ttft.p99)} | ${s.tpot.mean.toFixed(1)} | ${s.itl.mean.toFixed(1)} | ${s.outputThroughput.toFixed(0)} | ${m.prefixHitRate === undefined ? "–" : `${(m.prefixHitRate * 100).toFixed(0)}%`} | ${m.preemptions ?? "–"} |`;
  });
  const ratio = (a: number, b: number | undefined) => (b ? (a / b).toFixed(2) : "–");
  const ratios = modes.map((m) => `| ${m.name} | ${ratio(m.summary.ttft.mean, base?.ttft.mean)} | ${ratio(m.summary.ttft.p99, base?.ttft.p99)} | ${ratio(m.summary.tpot.mean, base?.tpot.mean)} | ${ratio(m.summary.outputThroughput, base?.outputThroughput)} |`);
  return [
    `# ${title}`,
    "",
    `Reproduce with \`${command}\`.`,
    "",
    "## Modes",
    "",
    ...modes.map((m) => `- **${m.name}**: ${m.description}`),
    "",
    "## Results",
    "",
    "All times are model time in milliseconds. Throughput is output tokens per second.",
    "Prefix-cache hits and preemptions are the replicas' own counters (`vllm:prefix_cache_hits_total` over",
    "`vllm:prefix_cache_queries_total`, and `vllm:num_preemptions_total`).",
    "",
    "| mode | completed | failed | shed | mean TTFT | median TTFT | P99 TTFT | mean TPOT | mean ITL | output tok/s | prefix-cache hits | preemptions |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ...rows,
    "",
    `### Ratios against ${baseline}`,
    "",
    "Below 1 is better for latency. Above 1 is better for throughput.",
    "",
    "| mode | mean TTFT | P99 TTFT | mean TPOT | output throughput |",
    "|---|---|---|---|---|",
    ...ratios,
    "",
    `### After the start-up burst`,
    "",
    `The first ${concurrency} requests start together, so every mode begins with the same prefill backlog.`,
    `This table takes TTFT over the requests after those ${concurrency}, in the same run. It is a view of`,
    "the same data, not a different run.",
    "",
    "| mode | mean TTFT | median TTFT | P99 TTFT | mean ratio | P99 ratio |",
    "|---|---|---|---|---|---|",
    ...steadyStateRows(modes, baseline, concurrency),
    "",
    extra,
    "## TTFT distribution",
    "",
    "![TTFT distribution per mode](ttft.svg)",
    "",
    "## Options",
    "",
    "```json",
    JSON.stringify(options, null, 2),
    "```",
    "",
  ].join("\n");
}

export function writeReport(dir: string, title: string, options: Record<string, unknown>, modes: ModeResult[], baseline: string, command: string, extra = ""): void {
  mkdirSync(dir, { recursive: true });
  // Raw records keep their ITL count and mean, not every gap (3000 gaps × every request is tens of MB).
  const slim = modes.map((m) => ({ ...m, records: m.records.map(({ itlMs, ...r }) => ({ ...r, itlCount: itlMs.length, itlMeanMs: itlMs.length ? itlMs.reduce((a, b) => a + b, 0) / itlMs.length : 0 })) }));
  writeFileSync(join(dir, "result.json"), JSON.stringify({ title, options, modes: slim }, null, 1));
  writeFileSync(join(dir, "ttft.svg"), ttftChartSvg(modes));
  writeFileSync(join(dir, "report.md"), markdownReport(title, options, modes, baseline, command, extra));
}
