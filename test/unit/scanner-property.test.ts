// The filter's body scanner against Python's json, the parser vLLM and SGLang read bodies with:
// generated bodies (escapes, surrogates, duplicate keys, nesting, truncation, invalid UTF-8, byte
// order marks, whitespace) over random chunkings must get the same verdict (the model, or which
// error), and a rewritten body must parse to the chosen target with every other member unchanged.
// `npm run fuzz -- --count 1000000` runs the long version (scripts/fuzz-scanner.ts).
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { describeBytes, fuzz, JsonOracle } from "../support/json-fuzz.ts";

describe("body scanner against Python's json", () => {
  const oracle = new JsonOracle();
  after(() => oracle.close());

  for (const seed of [1, 2]) {
    it(`agrees on 10,000 generated bodies (seed ${seed})`, async () => {
      const failure = await fuzz(oracle, seed, 10_000);
      assert.equal(failure, undefined, failure && `${failure.what}: ${describeBytes(failure.minimal)}\nscanner: ${JSON.stringify(failure.scanner)}\npython: ${JSON.stringify(failure.oracle)}`);
    });
  }
});
