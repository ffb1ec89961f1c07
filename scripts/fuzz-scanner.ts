// The long version of the scanner property test: `npm run fuzz -- --count 1000000 [--seed N]`.
// Generated bodies go through the compiled scanner over random chunkings and through Python's
// json; the first disagreement is minimized and printed with the seed that reproduces it.
import { parseArgs } from "node:util";
import { describeBytes, fuzz, JsonOracle } from "../test/support/json-fuzz.ts";

const { values } = parseArgs({ options: { count: { type: "string", default: "100000" }, seed: { type: "string" } } });
const count = Number(values.count);
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
const oracle = new JsonOracle();
const started = Date.now();
let reported = 0;
console.log(`fuzzing the body scanner against Python's json: ${count} bodies, seed ${seed}`);
const failure = await fuzz(oracle, seed, count, (done) => {
  if (done - reported >= 100_000 || done === count) {
    reported = done;
    console.log(`  ${done} bodies agree (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  }
});
oracle.close();
if (failure) {
  console.log(`MISMATCH (${failure.what}) with seed ${seed}`);
  console.log(`  minimal body: ${describeBytes(failure.minimal)}`);
  console.log(`  original body: ${describeBytes(failure.body)}`);
  console.log(`  chunk cuts: ${JSON.stringify([...failure.cuts])}`);
  console.log(`  scanner: ${JSON.stringify(failure.scanner)}`);
  console.log(`  python:  ${JSON.stringify(failure.oracle)}`);
  process.exit(1);
}
console.log(`no mismatch in ${count} bodies (seed ${seed}), ${((Date.now() - started) / 1000).toFixed(0)} s`);
