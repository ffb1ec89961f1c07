// The filter's body scanner against Python's json, the parser vLLM and SGLang read bodies with:
// generated bodies (escapes, surrogates, duplicate keys, nesting, truncation, invalid UTF-8, byte
// order marks, whitespace) over random chunkings must get the same verdict (the model, or which
// error), and a rewritten body must parse to the chosen target with every other member unchanged.
// `npm run fuzz -- --count 1000000` runs the long version (scripts/fuzz-scanner.ts).
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { checkBatch, describeBytes, fuzz, JsonOracle } from "../support/json-fuzz.ts";

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

// Every lead byte and the continuation bytes at each boundary the scanner decides on (overlong
// forms, surrogates, the end of Unicode, a byte that is no continuation), inside a prompt, where the
// scanner's fast path reads four bytes at once; and the same bytes cut by a chunk boundary right
// after the lead, where it reads them one at a time. Python decides each.
describe("body scanner on every UTF-8 and \\u boundary", () => {
  const oracle = new JsonOracle();
  after(() => oracle.close());
  const CONTS = [0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff];
  const head = Buffer.from('{"model": "m", "prompt": "ab');
  const tail = Buffer.from('cdefgh", "n": 1}');

  async function check(sequences: number[][]): Promise<void> {
    const bodies: Uint8Array[] = [];
    const cuts: Uint32Array[] = [];
    for (const seq of sequences) {
      const body = Buffer.concat([head, Buffer.from(seq), tail]);
      for (const cut of [0, 1, 2, 3]) {
        bodies.push(body);
        cuts.push(cut === 0 ? new Uint32Array(0) : Uint32Array.of(head.length + cut));
      }
    }
    for (let at = 0; at < bodies.length; at += 2000) {
      const failure = await checkBatch(oracle, bodies.slice(at, at + 2000), cuts.slice(at, at + 2000));
      assert.equal(failure, undefined, failure && `${failure.what}: ${describeBytes(failure.body)} cut at ${[...failure.cuts]}\nscanner: ${JSON.stringify(failure.scanner)}\npython: ${JSON.stringify(failure.oracle)}`);
    }
  }

  it("two-byte forms: every lead byte from 0x80, each boundary second byte", async () => {
    const seqs: number[][] = [];
    for (let lead = 0x80; lead <= 0xff; lead++) for (const c of CONTS) seqs.push([lead, c]);
    await check(seqs);
  });

  it("three-byte forms: leads E0..EF (overlong after E0, surrogates after ED), alone and beside a valid one", async () => {
    // The fast path reads two three-byte characters at once: each form also comes after and before 多.
    const valid = [0xe5, 0xa4, 0x9a];
    const seqs: number[][] = [];
    for (let lead = 0xe0; lead <= 0xef; lead++) for (const c1 of CONTS) for (const c2 of CONTS) {
      seqs.push([lead, c1, c2], [...valid, lead, c1, c2], [lead, c1, c2, ...valid]);
    }
    await check(seqs);
  });

  it("four-byte forms: leads F0..F7 (overlong after F0, beyond U+10FFFF after F4)", async () => {
    const seqs: number[][] = [];
    for (let lead = 0xf0; lead <= 0xf7; lead++) for (const c1 of CONTS) for (const c2 of [0x7f, 0x80, 0xbf, 0xc0]) for (const c3 of [0x7f, 0x80, 0xbf, 0xc0]) seqs.push([lead, c1, c2, c3]);
    await check(seqs);
  });

  it("\\u escapes: each hex position at the edges of 0-9, a-f and A-F", async () => {
    const EDGES = [..."/09:@AFG`afg"].map((c) => c.charCodeAt(0));
    const seqs: number[][] = [];
    for (let pos = 0; pos < 4; pos++) for (const b of EDGES) {
      const digits = [0x30, 0x30, 0x65, 0x39];
      digits[pos] = b;
      seqs.push([0x5c, 0x75, ...digits]);
    }
    // A run of escaped CJK characters, as Python's json.dumps writes them, and a bad one at its end.
    seqs.push([..."\\u8bf7\\u6839\\u636e\\u4ee5\\u4e0b"].map((c) => c.charCodeAt(0)));
    seqs.push([..."\\u8bf7\\u6839\\u636e\\u4ee5\\u4e0g"].map((c) => c.charCodeAt(0)));
    await check(seqs);
  });
});
