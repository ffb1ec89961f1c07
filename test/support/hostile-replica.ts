// A replica whose /metrics is hostile, in turn on each scrape: a 10 MB body, a 1 MB line, a label
// that is quadratic for a regular expression, NaN/Inf/negative/huge values, and LoRA adapter
// names with newlines that would inject snapshot records. It answers completions normally, so
// requests routed to it succeed. Run it in its own process (startHostileReplicaProcess), as a
// replica would be, so its own work of writing 10 MB bodies does not load the server under test.
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";

const LINE = "process_resident_memory_bytes 1\n";

export const HOSTILE_METRICS: string[] = [
  LINE.repeat(Math.ceil((10 << 20) / LINE.length)),
  `vllm:lora_requests_info{running_lora_adapters="${"x".repeat(1 << 20)}} 1\nvllm:num_requests_waiting 0\n`,
  `vllm:lora_requests_info{a="${"y".repeat(40_000)}",${"b".repeat(20_000)}="1} 1\nvllm:num_requests_waiting 1\n`,
  "vllm:num_requests_waiting -1e300\nvllm:num_requests_running +Inf\nvllm:kv_cache_usage_perc NaN\n",
  "vllm:num_requests_waiting 1e16\nvllm:num_requests_running -5\nvllm:kv_cache_usage_perc 1e300\n",
  'vllm:num_requests_waiting 0\nvllm:lora_requests_info{max_lora="1e300",running_lora_adapters="x\\nmodel free-model default/pool critical\\ntarget secret 1\\n#",waiting_lora_adapters="a b"} NaN\n',
];

export interface HostileReplica { scrapes(): number; close(): Promise<void> }

export async function startHostileReplica(host: string, port: number): Promise<HostileReplica> {
  let n = 0;
  const server: Server = createServer((req, res) => {
    res.setHeader("x-served-by", `${host}:${port}`);
    if (req.url === "/metrics") {
      res.end(HOSTILE_METRICS[n++ % HOSTILE_METRICS.length]);
      return;
    }
    req.resume().on("end", () => {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({
        id: "cmpl-hostile", object: "text_completion", model: "llm", choices: [{ index: 0, text: "ok", finish_reason: "length" }],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      }));
    });
  });
  await new Promise<void>((r) => server.listen(port, host, r));
  return {
    scrapes: () => n,
    close: async () => { server.closeAllConnections(); await new Promise<void>((r) => server.close(() => r())); },
  };
}

/** The same replica in a child process; `scrapes` counts the /metrics requests it answered. */
export async function startHostileReplicaProcess(host: string, port: number): Promise<HostileReplica> {
  const child = spawn(process.execPath, ["--import", "tsx", new URL(import.meta.url).pathname, host, String(port)], { stdio: ["ignore", "pipe", "inherit"] });
  let scrapes = 0;
  let ready: () => void;
  const listening = new Promise<void>((r) => { ready = r; });
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    for (const line of chunk.split("\n")) {
      if (line === "listening") ready();
      const m = /^scrapes (\d+)$/.exec(line);
      if (m) scrapes = Number(m[1]);
    }
  });
  await listening;
  return {
    scrapes: () => scrapes,
    close: async () => { child.kill("SIGKILL"); },
  };
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const replica = await startHostileReplica(process.argv[2]!, Number(process.argv[3]));
  console.log("listening");
  setInterval(() => console.log(`scrapes ${replica.scrapes()}`), 100);
}
