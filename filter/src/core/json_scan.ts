// A resumable byte scanner that finds the top-level "model" string of a JSON object, and the
// leading bytes of the prompt (the raw JSON of the top-level "messages", "prompt" or "input"
// value) for prefix affinity.
//
// Why not a JSON parser: the body can be megabytes and arrives in chunks; we need one string at
// depth 1 and want to stop the moment it is known. The scanner keeps a few integers of state, is
// fed each chunk once (never re-reads earlier bytes), stops as soon as both are known (or the
// object ends), and validates the structure it walks over:
// brackets must match, strings must be terminated, keys must be followed by ':'. It does not
// validate number and literal spellings in values it skips (the model server will).
//
// Pure module: no host imports, so it runs unchanged inside Envoy and in Node tests.

export const enum ScanResult {
  /** More bytes are needed. */
  NeedMore = 0,
  /** The top-level "model" string was read (see `model`, `valueStart`, `valueEnd`), and the
   * prompt prefix too if the body has one. */
  Found = 1,
  /** The top-level object ended without a "model" key. */
  Missing = 2,
  /** The bytes are not a JSON object (see `error`). */
  Invalid = 3,
}

const enum State {
  BeforeRoot,
  KeyOrEnd, // right after '{'
  Key, // after ','
  InKey,
  Colon,
  Value,
  InModelValue,
  SkipString, // a string value at depth 1
  SkipNested, // inside an object/array value
  SkipScalar, // a number or literal at depth 1
  AfterValue,
  Done,
}

const MAX_KEY_BYTES: i32 = 64;
const MAX_MODEL_BYTES: i32 = 1024;
const MAX_DEPTH: i32 = 128;
const MODEL_KEY: StaticArray<u8> = [0x6d, 0x6f, 0x64, 0x65, 0x6c]; // "model"
const PROMPT_KEYS: string[] = ["messages", "prompt", "input"];
/** Leading prompt bytes kept for prefix affinity. */
export const PROMPT_PREFIX_BYTES: i32 = 1024;

function isWhitespace(c: u32): bool {
  return c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09;
}

function hexValue(c: u32): i32 {
  if (c >= 0x30 && c <= 0x39) return <i32>(c - 0x30);
  if (c >= 0x61 && c <= 0x66) return <i32>(c - 0x61 + 10);
  if (c >= 0x41 && c <= 0x46) return <i32>(c - 0x41 + 10);
  return -1;
}

function bytesToString(bytes: Array<u8>): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += String.fromCharCode(bytes[i]);
  return out;
}

function isScalarByte(c: u32): bool {
  // Digits, letters (true/false/null, exponents), sign and decimal point.
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c == 0x2b || c == 0x2d || c == 0x2e;
}

/**
 * Decodes the string escapes of a captured key or value into UTF-8 bytes. Separate from the byte
 * loop so escapes split across chunks need no special casing: escape bytes are buffered raw and
 * decoded once the closing quote is seen.
 */
class EscapeDecoder {
  out: Array<u8> = new Array<u8>();
  error: string = "";

  decode(raw: Array<u8>): bool {
    this.out = new Array<u8>();
    let i = 0;
    while (i < raw.length) {
      const c = <u32>raw[i];
      if (c != 0x5c) { this.out.push(<u8>c); i++; continue; }
      if (i + 1 >= raw.length) { this.error = "unterminated escape"; return false; }
      const e = <u32>raw[i + 1];
      i += 2;
      if (e == 0x22 || e == 0x5c || e == 0x2f) this.out.push(<u8>e);
      else if (e == 0x62) this.out.push(0x08);
      else if (e == 0x66) this.out.push(0x0c);
      else if (e == 0x6e) this.out.push(0x0a);
      else if (e == 0x72) this.out.push(0x0d);
      else if (e == 0x74) this.out.push(0x09);
      else if (e == 0x75) {
        let code = this.hex4(raw, i);
        if (code < 0) return false;
        i += 4;
        if (code >= 0xd800 && code <= 0xdbff && i + 6 <= raw.length && <u32>raw[i] == 0x5c && <u32>raw[i + 1] == 0x75) {
          const low = this.hex4(raw, i + 2);
          if (low >= 0xdc00 && low <= 0xdfff) {
            code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
            i += 6;
          }
        }
        this.pushCodePoint(<u32>code);
      } else { this.error = "invalid escape"; return false; }
    }
    return true;
  }

  private hex4(raw: Array<u8>, at: i32): i32 {
    if (at + 4 > raw.length) { this.error = "truncated \\u escape"; return -1; }
    let v = 0;
    for (let k = 0; k < 4; k++) {
      const h = hexValue(<u32>raw[at + k]);
      if (h < 0) { this.error = "invalid \\u escape"; return -1; }
      v = (v << 4) | h;
    }
    return v;
  }

  private pushCodePoint(cp: u32): void {
    if (cp < 0x80) this.out.push(<u8>cp);
    else if (cp < 0x800) { this.out.push(<u8>(0xc0 | (cp >> 6))); this.out.push(<u8>(0x80 | (cp & 0x3f))); }
    else if (cp < 0x10000) {
      this.out.push(<u8>(0xe0 | (cp >> 12)));
      this.out.push(<u8>(0x80 | ((cp >> 6) & 0x3f)));
      this.out.push(<u8>(0x80 | (cp & 0x3f)));
    } else {
      this.out.push(<u8>(0xf0 | (cp >> 18)));
      this.out.push(<u8>(0x80 | ((cp >> 12) & 0x3f)));
      this.out.push(<u8>(0x80 | ((cp >> 6) & 0x3f)));
      this.out.push(<u8>(0x80 | (cp & 0x3f)));
    }
  }
}

export class ModelScanner {
  /** Decoded model name (valid once `Found`). */
  model: string = "";
  /** Absolute offset of the opening quote of the model value. */
  valueStart: i64 = -1;
  /** Absolute offset just past the closing quote of the model value. */
  valueEnd: i64 = -1;
  /** Why the body was rejected (valid once `Invalid`). */
  error: string = "";
  /** Bytes consumed so far: the absolute offset of the next byte to feed. */
  consumed: i64 = 0;
  /** Raw leading bytes of the prompt value; `promptLength` of them are valid. */
  promptPrefix: StaticArray<u8> = new StaticArray<u8>(PROMPT_PREFIX_BYTES);
  promptLength: i32 = 0;
  private modelFound: bool = false;
  private promptDone: bool = false;
  private keyIsPrompt: bool = false;
  private capturing: bool = false;

  private state: State = State.BeforeRoot;
  private result: ScanResult = ScanResult.NeedMore;
  private inString: bool = false;
  private escaped: bool = false;
  private raw: Array<u8> = new Array<u8>();
  private keyIsModel: bool = false;
  private keyTooLong: bool = false;
  // Container stack for nested values: 0x7b '{' or 0x5b '['; index 0 is the root object.
  private stack: StaticArray<u8> = new StaticArray<u8>(MAX_DEPTH);
  private depth: i32 = 0;
  private decoder: EscapeDecoder = new EscapeDecoder();

  get status(): ScanResult { return this.result; }

  /** Feeds `len` bytes at `ptr`; they are the body bytes at absolute offset `consumed`. */
  feed(ptr: usize, len: usize): ScanResult {
    let i: usize = 0;
    while (i < len && this.result == ScanResult.NeedMore) {
      this.step(<u32>load<u8>(ptr + i), this.consumed + <i64>i);
      i++;
    }
    this.consumed += <i64>i;
    return this.result;
  }

  /** The body ended: anything still open is truncated JSON (unless the model is already known). */
  finish(): ScanResult {
    if (this.result == ScanResult.NeedMore && this.modelFound) {
      this.found();
    } else if (this.result == ScanResult.NeedMore) {
      this.fail(this.state == State.BeforeRoot ? "request body is empty" : "unexpected end of JSON body");
    }
    return this.result;
  }

  private fail(message: string): void {
    this.error = message;
    this.result = ScanResult.Invalid;
    this.state = State.Done;
  }

  private step(c: u32, at: i64): void {
    // Capture every byte of the prompt value, up to and including its closing quote or bracket.
    if (this.capturing && this.state != State.AfterValue) this.capture(c);
    switch (this.state) {
      case State.BeforeRoot: {
        if (isWhitespace(c)) return;
        if (c != 0x7b) { this.fail("request body must be a JSON object"); return; }
        this.stack[0] = 0x7b;
        this.depth = 1;
        this.state = State.KeyOrEnd;
        return;
      }
      case State.KeyOrEnd:
      case State.Key: {
        if (isWhitespace(c)) return;
        if (c == 0x22) { this.startCapture(); this.state = State.InKey; return; }
        if (c == 0x7d && this.state == State.KeyOrEnd) { this.endRoot(); return; }
        this.fail("expected a string key in the JSON object");
        return;
      }
      case State.InKey: {
        if (this.captureStringByte(c, MAX_KEY_BYTES)) this.endKey();
        return;
      }
      case State.Colon: {
        if (isWhitespace(c)) return;
        if (c != 0x3a) { this.fail("expected ':' after a key"); return; }
        this.state = State.Value;
        return;
      }
      case State.Value: {
        this.startValue(c, at);
        return;
      }
      case State.InModelValue: {
        if (this.captureStringByte(c, MAX_MODEL_BYTES)) this.endModel(at);
        return;
      }
      case State.SkipString: {
        if (this.skipStringByte(c)) this.state = State.AfterValue;
        return;
      }
      case State.SkipNested: {
        this.skipNestedByte(c);
        return;
      }
      case State.SkipScalar: {
        if (isScalarByte(c)) return;
        this.state = State.AfterValue;
        this.step(c, at);
        return;
      }
      case State.AfterValue: {
        if (this.capturing) this.endPrompt();
        if (isWhitespace(c)) return;
        if (c == 0x2c) { this.state = State.Key; return; }
        if (c == 0x7d) { this.endRoot(); return; }
        this.fail("expected ',' or '}' after a value");
        return;
      }
      default:
        return;
    }
  }

  private startValue(c: u32, at: i64): void {
    if (isWhitespace(c)) return;
    if (this.keyIsPrompt && !this.promptDone && !this.keyIsModel) {
      this.capturing = true;
      this.capture(c);
    }
    if (this.keyIsModel) {
      if (c != 0x22) { this.fail("\"model\" must be a string"); return; }
      this.valueStart = at;
      this.startCapture();
      this.state = State.InModelValue;
      return;
    }
    if (c == 0x22) { this.inString = true; this.escaped = false; this.state = State.SkipString; return; }
    if (c == 0x7b || c == 0x5b) { this.push(<u8>c); this.state = State.SkipNested; return; }
    if (isScalarByte(c)) { this.state = State.SkipScalar; return; }
    this.fail("unexpected character in a JSON value");
  }

  private startCapture(): void {
    this.raw = new Array<u8>();
    this.escaped = false;
    this.keyTooLong = false;
  }

  /** Appends one byte of a captured string; returns true at the closing quote. */
  private captureStringByte(c: u32, limit: i32): bool {
    if (this.escaped) { this.escaped = false; }
    else if (c == 0x5c) { this.escaped = true; }
    else if (c == 0x22) { return true; }
    else if (c < 0x20) { this.fail("control character in a JSON string"); return false; }
    if (this.raw.length < limit) this.raw.push(<u8>c);
    else this.keyTooLong = true;
    return false;
  }

  private endKey(): void {
    this.keyIsModel = false;
    this.keyIsPrompt = false;
    if (!this.keyTooLong && this.decoder.decode(this.raw)) {
      const key = this.decoder.out;
      if (key.length == MODEL_KEY.length) {
        let same = true;
        for (let k = 0; k < key.length; k++) if (key[k] != MODEL_KEY[k]) { same = false; break; }
        this.keyIsModel = same;
      }
      if (!this.keyIsModel && key.length <= 8) this.keyIsPrompt = PROMPT_KEYS.includes(bytesToString(key));
    } else if (!this.keyTooLong) {
      this.fail(this.decoder.error);
      return;
    }
    this.state = State.Colon;
  }

  private endModel(at: i64): void {
    if (this.keyTooLong) { this.fail("\"model\" is longer than 1024 bytes"); return; }
    if (!this.decoder.decode(this.raw)) { this.fail(this.decoder.error); return; }
    const bytes = this.decoder.out;
    const buf = new ArrayBuffer(bytes.length);
    for (let k = 0; k < bytes.length; k++) store<u8>(changetype<usize>(buf) + k, bytes[k]);
    this.model = String.UTF8.decode(buf);
    this.valueEnd = at + 1;
    this.modelFound = true;
    this.state = State.AfterValue;
    if (this.promptDone) this.found();
  }

  private found(): void {
    this.result = ScanResult.Found;
    this.state = State.Done;
  }

  private endRoot(): void {
    if (this.capturing) this.endPrompt();
    this.result = this.modelFound ? ScanResult.Found : ScanResult.Missing;
    this.state = State.Done;
  }

  /** Appends a byte of the prompt value; the prompt is done when the prefix buffer is full. */
  private capture(c: u32): void {
    if (this.promptLength < PROMPT_PREFIX_BYTES) {
      this.promptPrefix[this.promptLength++] = <u8>c;
      if (this.promptLength < PROMPT_PREFIX_BYTES) return;
    }
    this.endPrompt();
  }

  private endPrompt(): void {
    this.capturing = false;
    this.promptDone = true;
    if (this.modelFound && this.result == ScanResult.NeedMore) this.found();
  }

  /** Returns true at the closing quote of a skipped string. */
  private skipStringByte(c: u32): bool {
    if (this.escaped) { this.escaped = false; return false; }
    if (c == 0x5c) { this.escaped = true; return false; }
    if (c == 0x22) { this.inString = false; return true; }
    if (c < 0x20) this.fail("control character in a JSON string");
    return false;
  }

  private skipNestedByte(c: u32): void {
    if (this.inString) { this.skipStringByte(c); return; }
    if (c == 0x22) { this.inString = true; this.escaped = false; return; }
    if (c == 0x7b || c == 0x5b) { this.push(<u8>c); return; }
    if (c == 0x7d || c == 0x5d) {
      const open = this.stack[this.depth - 1];
      if ((c == 0x7d && open != 0x7b) || (c == 0x5d && open != 0x5b)) { this.fail("mismatched brackets in JSON body"); return; }
      this.depth--;
      if (this.depth == 1) this.state = State.AfterValue;
    }
  }

  private push(open: u8): void {
    if (this.depth >= MAX_DEPTH) { this.fail("JSON body is nested too deeply"); return; }
    this.stack[this.depth] = open;
    this.depth++;
  }
}
