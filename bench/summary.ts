// The figures vLLM's benchmark_serving.py reports, from per-request records. All durations are in
// milliseconds of model time.

export interface RequestRecord {
  index: number;
  ok: boolean;
  /** HTTP 429: the gateway shed the request. */
  shed: boolean;
  status: number;
  error?: string;
  startMs: number;
  ttftMs: number;
  /** Gaps between streamed chunks after the first. */
  itlMs: number[];
  e2eMs: number;
  inputTokens: number;
  outputTokens: number;
  servedBy?: string;
}

export interface Distribution { mean: number; median: number; p90: number; p99: number }

export interface Summary {
  completed: number;
  failed: number;
  shed: number;
  durationS: number;
  totalInputTokens: number;
  totalOutputTokens: number;
  requestThroughput: number;
  outputThroughput: number;
  totalTokenThroughput: number;
  ttft: Distribution;
  tpot: Distribution;
  itl: Distribution;
  e2el: Distribution;
}

/** Linear-interpolated percentile, as numpy.percentile (which vLLM uses). */
export function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  const pos = (sorted.length - 1) * (q / 100);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** The median of a set of runs' figures (the middle one, or the mean of the middle two). */
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** A figure over several runs or seeds: the median and the range. */
export interface Spread { median: number; min: number; max: number }
export const spread = (values: number[]): Spread => ({ median: median(values), min: Math.min(...values), max: Math.max(...values) });

/**
 * The medians over groups when each group gives one of its values, chosen at random, `resamples`
 * times, sorted: how far a median over groups (seeds) of single runs can move by chance when each
 * group's runs differ by chance alone (bench/lab/rr-chance.ts: one Envoy run per seed against the
 * lab's draws of round robin's starting hosts).
 */
export function resampledMedians(groups: number[][], resamples: number, random: () => number): number[] {
  if (groups.some((g) => g.length === 0)) throw new Error("every group needs at least one value");
  const out = Array.from({ length: resamples }, () => median(groups.map((g) => g[Math.floor(random() * g.length)]!)));
  return out.sort((a, b) => a - b);
}

const num = (x: number): string => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2));
/** "median [min–max]"; just the value when every run gave the same. */
export const spreadCell = (s: Spread, digits?: number): string => {
  const f = (x: number): string => (digits === undefined ? num(x) : x.toFixed(digits));
  return s.min === s.max ? f(s.median) : `${f(s.median)} [${f(s.min)}–${f(s.max)}]`;
};

export function distribution(values: number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b);
  const mean = sorted.length === 0 ? 0 : sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return { mean, median: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99) };
}

export function summarize(records: RequestRecord[], durationMs: number): Summary {
  const ok = records.filter((r) => r.ok);
  const durationS = durationMs / 1000;
  const totalInputTokens = ok.reduce((n, r) => n + r.inputTokens, 0);
  const totalOutputTokens = ok.reduce((n, r) => n + r.outputTokens, 0);
  return {
    completed: ok.length,
    failed: records.filter((r) => !r.ok && !r.shed).length,
    shed: records.filter((r) => r.shed).length,
    durationS,
    totalInputTokens,
    totalOutputTokens,
    requestThroughput: ok.length / durationS,
    outputThroughput: totalOutputTokens / durationS,
    totalTokenThroughput: (totalInputTokens + totalOutputTokens) / durationS,
    ttft: distribution(ok.map((r) => r.ttftMs)),
    // vLLM: TPOT excludes the first token and requests with a single output token.
    tpot: distribution(ok.filter((r) => r.outputTokens > 1).map((r) => (r.e2eMs - r.ttftMs) / (r.outputTokens - 1))),
    itl: distribution(ok.flatMap((r) => r.itlMs)),
    e2el: distribution(ok.map((r) => r.e2eMs)),
  };
}

const line = (label: string, value: string): string => `${label.padEnd(40)}${value.padStart(10)}`;

/** The block vLLM's benchmark_serving.py prints, plus failed and shed counts. */
export function formatSummary(title: string, s: Summary): string {
  const f2 = (x: number) => x.toFixed(2);
  const dist = (name: string, unit: string, d: Distribution) => [
    `${"-".repeat(15)}${name}${"-".repeat(Math.max(0, 35 - name.length))}`,
    line(`Mean ${unit} (ms):`, f2(d.mean)),
    line(`Median ${unit} (ms):`, f2(d.median)),
    line(`P99 ${unit} (ms):`, f2(d.p99)),
  ];
  return [
    `${"=".repeat(14)} Serving Benchmark Result ${"=".repeat(10)}`.padEnd(50, "="),
    line("Mode:", title),
    line("Successful requests:", String(s.completed)),
    line("Failed requests:", String(s.failed)),
    line("Shed requests (429):", String(s.shed)),
    line("Benchmark duration (s):", f2(s.durationS)),
    line("Total input tokens:", String(s.totalInputTokens)),
    line("Total generated tokens:", String(s.totalOutputTokens)),
    line("Request throughput (req/s):", f2(s.requestThroughput)),
    line("Output token throughput (tok/s):", f2(s.outputThroughput)),
    line("Total Token throughput (tok/s):", f2(s.totalTokenThroughput)),
    ...dist("Time to First Token", "TTFT", s.ttft),
    ...dist("Time per Output Token (excl. 1st token)", "TPOT", s.tpot),
    ...dist("Inter-token Latency", "ITL", s.itl),
    ...dist("End-to-end Latency", "E2EL", s.e2el),
    "=".repeat(50),
  ].join("\n");
}
