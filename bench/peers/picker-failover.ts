// How many requests fail when a pool's endpoint picker dies, before Envoy routes around it
// (envoy/endpoint-picker.ts: health check, ejection on the first refused connection, panic
// threshold 0). A FailOpen and a FailClose pool each name a fake picker (test/support/fake-picker.ts)
// in standalone infergate; per round the picker is started, Envoy is left to see it healthy, the
// picker is stopped (its listener closed and its streams reset, as when the process dies), and K
// requests with a 4 KB body follow at once, one after another or all together. FailOpen requests
// that fail, and FailClose requests that are not 503, are counted.
//
//   npx tsx bench/peers/picker-failover.ts [--rounds 5] [--requests 20]
//   (in a private network namespace: unshare --net bash -c 'ip link set lo up && npx tsx ...')
import { parseArgs } from "node:util";
import { startFakePicker, type FakePicker } from "../../test/support/fake-picker.ts";
import { podsYaml, postJson, SIM_PORT, startStack } from "../../test/support/stack.ts";

const IPS = ["127.0.12.1", "127.0.12.2"];
const PICKER_IP = "127.0.12.200";
const PORTS = { open: 19_302, close: 19_303 };

function yaml(): string {
  const pool = (name: string, port: number, mode: string): string => `---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: ${name}}
spec:
  selector: {matchLabels: {app: llm}}
  targetPorts: [{number: ${SIM_PORT}}]
  endpointPickerRef: {name: ${name}-picker, port: {number: ${port}}, failureMode: ${mode}}
---
apiVersion: v1
kind: Service
metadata: {name: ${name}-picker}
spec: {clusterIP: ${PICKER_IP}, ports: [{port: ${port}, appProtocol: kubernetes.io/h2c}]}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: ${name}}
spec: {modelName: ${name}, criticality: Critical, poolRef: {name: ${name}}}
`;
  return pool("open", PORTS.open, "FailOpen") + pool("close", PORTS.close, "FailClose") + podsYaml("llm", IPS);
}

export interface FailoverRound { mode: "sequential" | "concurrent"; open: number; close: number }

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: "string", default: "5" }, requests: { type: "string", default: "20" } } });
  const rounds = Number(values.rounds);
  const k = Number(values.requests);
  const pick = () => ({ endpoints: [`${IPS[0]}:${SIM_PORT}`] });
  const pickers: Record<"open" | "close", FakePicker> = {
    open: await startFakePicker({ host: PICKER_IP, port: PORTS.open, pick }),
    close: await startFakePicker({ host: PICKER_IP, port: PORTS.close, pick }),
  };
  const stack = await startStack(yaml(), IPS.map((ip) => ({ ip, models: ["open", "close"] })));
  const url = `${stack.inferenceUrl}/v1/completions`;
  const body = (model: string) => ({ model, prompt: "x".repeat(4000), max_tokens: 1 });
  const results: FailoverRound[] = [];
  try {
    for (const mode of ["sequential", "concurrent"] as const) {
      for (let r = 0; r < rounds; r++) {
        // Healthy again: both pools' requests go through their pickers.
        for (const model of ["open", "close"] as const) {
          const before = pickers[model].requests.length;
          const deadline = Date.now() + 10_000;
          while (!((await postJson(url, body(model))).status === 200 && pickers[model].requests.length > before)) {
            if (Date.now() > deadline) throw new Error(`${model} picker never used again`);
            await new Promise((res) => setTimeout(res, 100));
          }
        }
        await Promise.all([pickers.open.stop(), pickers.close.stop()]);
        const send = (model: string) => postJson(url, body(model)).then((x) => x.status);
        const statuses = { open: [] as number[], close: [] as number[] };
        if (mode === "sequential") {
          for (let i = 0; i < k; i++) { statuses.open.push(await send("open")); statuses.close.push(await send("close")); }
        } else {
          const [o, c] = await Promise.all([Promise.all(Array.from({ length: k }, () => send("open"))), Promise.all(Array.from({ length: k }, () => send("close")))]);
          statuses.open = o; statuses.close = c;
        }
        results.push({ mode, open: statuses.open.filter((s) => s !== 200).length, close: statuses.close.filter((s) => s !== 503).length });
        console.error(`${mode} round ${r + 1}: FailOpen non-200 ${results.at(-1)!.open}/${k}, FailClose non-503 ${results.at(-1)!.close}/${k}`);
        await Promise.all([pickers.open.start(), pickers.close.start()]);
      }
    }
  } finally {
    await stack.stop();
    await Promise.all([pickers.open.stop(), pickers.close.stop()]);
  }
  console.log(`| requests right after the picker dies | FailOpen requests that failed, per round | FailClose requests not answered 503, per round |`);
  console.log(`|---|---|---|`);
  for (const mode of ["sequential", "concurrent"] as const) {
    const mine = results.filter((r) => r.mode === mode);
    console.log(`| ${k} ${mode === "sequential" ? "one after another" : "at once"} | ${mine.map((r) => r.open).join(", ")} | ${mine.map((r) => r.close).join(", ")} |`);
  }
}

if (process.argv[1]?.endsWith("picker-failover.ts")) void main().then(() => process.exit(0));
