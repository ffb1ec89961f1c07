// Where the benchmark's simulated replicas listen (bench/replicas.ts, started by bench/run.ts and
// bench/peers/epp-fidelity.ts): replica i on 127.0.3.(i+1), and back from the address a response's
// `x-served-by` names to the replica's index (bench/lab/replay.ts).

/** The loopback addresses of `count` replicas, in replica order. */
export function replicaIps(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `127.0.3.${i + 1}`);
}

/** The replica index of a served-by address (`127.0.3.3:8000` → 2). */
export function replicaIndex(servedBy: string): number {
  const m = /^127\.0\.3\.(\d+):\d+$/.exec(servedBy);
  if (!m) throw new Error(`not a benchmark replica address: ${servedBy}`);
  return Number(m[1]) - 1;
}
