// `npm start` as a user runs it: the demo comes up on the seed's ports, answers the printed curl,
// and Ctrl-C (SIGINT) stops every process it started.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, it } from "node:test";
import { postJson, waitFor } from "../support/stack.ts";

const repo = new URL("../..", import.meta.url).pathname;

async function refused(url: string): Promise<boolean> {
  try {
    await fetch(url, { signal: AbortSignal.timeout(500) });
    return false;
  } catch {
    return true;
  }
}

describe("npm start demo", () => {
  it("serves the seed's curl on 8081 and 8080, and stops everything on Ctrl-C", async () => {
    const demo = spawn(process.execPath, ["--import", "tsx", "scripts/demo.ts"], { cwd: repo, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    demo.stdout.setEncoding("utf8").on("data", (c: string) => (output += c));
    demo.stderr.setEncoding("utf8").on("data", (c: string) => (output += c));
    const exited = new Promise<number | null>((resolve) => demo.once("exit", (code) => resolve(code)));
    try {
      await waitFor(async () => output.includes("Ctrl-C stops everything"), 60_000, 100);
      assert.match(output, /curl -s http:\/\/127\.0\.0\.1:8081\/v1\/chat\/completions/);
      const seed = { model: "qwq", messages: [{ role: "user", content: "Who are you?" }] };
      const routed = await postJson("http://127.0.0.1:8081/v1/chat/completions", seed);
      assert.equal(routed.status, 200, routed.text);
      assert.equal(routed.body.model, "qwq-32b");
      assert.match(routed.servedBy ?? "", /^127\.0\.0\.1[123]:8000$/);
      const plain = await postJson("http://127.0.0.1:8080/v1/chat/completions", seed);
      assert.equal(plain.status, 200, plain.text);
      const envoyPids = output.match(/envoy pid (\d+)/);
      demo.kill("SIGINT");
      assert.equal(await exited, 0, output);
      for (const url of ["http://127.0.0.1:8081/", "http://127.0.0.1:8080/", "http://127.0.0.1:9901/ready", "http://127.0.0.11:8000/health"]) {
        assert.ok(await refused(url), `${url} still answers after Ctrl-C`);
      }
      if (envoyPids) assert.throws(() => process.kill(Number(envoyPids[1]), 0), "Envoy process is gone");
    } finally {
      demo.kill("SIGKILL");
    }
  });
});
