// A resumable, validating JSON byte scanner for request bodies. It reads the whole body once, in
// the chunks Envoy delivers, and reports:
//   - the top-level "model" string (decoded) and the byte span of its value, for the rewrite;
//   - the leading bytes of the prompt (the raw JSON of the first top-level "messages", "prompt"
//     or "input" value), for prefix affinity;
//   - or why the body must be refused.
//
// Why the whole body, and not stop at "model": the model server (vLLM and SGLang parse with
// Python's json, where the last of duplicate keys wins) must see the very model the gateway
// checked, rewrote and shed by. So the scan validates the body as Python's json.loads(bytes)
// would, and refuses any body whose root object has more than one "model" key. That means:
// RFC 8259 grammar plus Python's NaN, Infinity and -Infinity; one optional UTF-8 BOM; strict
// UTF-8 in strings, except that encoded surrogates are accepted (Python decodes with
// 'surrogatepass'); nothing but whitespace after the root object.
//
// Errors come in two kinds. A syntax error stops the scan at once. A semantic error (a second
// "model", a model that is not a string, too long, or not valid Unicode) is remembered and
// reported at the end, unless a syntax error comes first, so the verdict is the same as parsing
// with json.loads and then checking the model (test/unit/scanner-property.test.ts checks it
// against Python itself).
//
// Cost: one pass, a few integers of state, no allocation except the short captured key, model
// value and prompt prefix. Inside strings, a tight loop skips (and copies the prompt prefix of)
// plain ASCII eight bytes at a time, two three-byte UTF-8 characters (Chinese, Japanese) per
// eight-byte read, any other UTF-8 character in one four-byte read and a \u escape by table, so
// English, Chinese and \u-escaped prompts all scan at 0.9 GB/s or more;
// `npx tsx bench/scan-cost.ts` measures it.
//
// Pure module: no host imports, so it runs unchanged inside Envoy and in Node tests.

export const enum ScanResult {
  /** More bytes are needed (also: the root object ended, and only the end of the body is missing). */
  NeedMore = 0,
  /** The body is valid and its root object has exactly one "model", a string (see `model`). */
  Found = 1,
  /** The body is valid and its root object has no "model" key. */
  Missing = 2,
  /** The body must be refused (see `error` and `errorKind`). */
  Invalid = 3,
}

/** Why a body was refused. */
export const enum ScanError {
  None = 0,
  Syntax = 1,
  TooDeep = 2,
  DuplicateModel = 3,
  ModelNotString = 4,
  ModelTooLong = 5,
  ModelNotUnicode = 6,
}

const enum State {
  BeforeRoot,
  ObjectKeyOrEnd, // right after '{'
  ObjectKey, // after ',' in an object
  Colon,
  Value,
  ArrayValueOrEnd, // right after '['
  AfterValue,
  AfterRoot,
  InString,
  InNumber,
  InLiteral,
}

/** What the string being scanned is: a value or a key nobody needs (skipped fast), or a root key
 * or the model value (captured). */
const enum Str { Skip = 0, Key = 1, RootKey = 2, Model = 3 }

const enum Num { AfterMinus, Zero, Int, AfterDot, Frac, AfterE, AfterESign, Exp }

/** Deeper than Python's json can parse (its recursion limit is 1000 frames). */
export const MAX_DEPTH: i32 = 1000;
/** Longest decoded model name accepted. */
export const MAX_MODEL_BYTES: i32 = 1024;
/** Leading prompt bytes kept for prefix affinity. */
export const PROMPT_PREFIX_BYTES: i32 = 1024;
/** Root keys longer than this (raw) are neither "model" nor a prompt key, however escaped. */
const MAX_KEY_BYTES: i32 = 64;
/** "model" fully \u-escaped is 30 bytes; a model value of 1024 bytes is at most 6144 escaped. */
const MAX_MODEL_RAW_BYTES: i32 = MAX_MODEL_BYTES * 6;

const LITERALS: string[] = ["true", "false", "null", "NaN", "Infinity"];

function isWhitespace(c: u32): bool {
  return c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09;
}

function isDigit(c: u32): bool {
  return c >= 0x30 && c <= 0x39;
}

function hexValue(c: u32): i32 {
  if (c >= 0x30 && c <= 0x39) return <i32>(c - 0x30);
  if (c >= 0x61 && c <= 0x66) return <i32>(c - 0x61 + 10);
  if (c >= 0x41 && c <= 0x46) return <i32>(c - 0x41 + 10);
  return -1;
}

/** The decoded bytes of a captured string (escapes resolved), and whether it held a surrogate
 * that is not part of a valid pair (such a string has no UTF-8 form). */
class Decoded {
  bytes: Array<u8> = new Array<u8>();
  loneSurrogate: bool = false;
}

/** Decodes the raw bytes of a string whose syntax the scanner has already validated. */
function decodeString(raw: Array<u8>): Decoded {
  const out = new Decoded();
  let i = 0;
  while (i < raw.length) {
    const c = <u32>raw[i];
    if (c != 0x5c) {
      // Raw bytes are valid UTF-8 already, except encoded surrogates (ED A0..BF ..).
      if (c == 0xed && i + 1 < raw.length && <u32>raw[i + 1] >= 0xa0) out.loneSurrogate = true;
      out.bytes.push(<u8>c);
      i++;
      continue;
    }
    const e = <u32>raw[i + 1];
    i += 2;
    if (e == 0x75) {
      let code = hex4(raw, i);
      i += 4;
      if (code >= 0xd800 && code <= 0xdbff && i + 6 <= raw.length && <u32>raw[i] == 0x5c && <u32>raw[i + 1] == 0x75) {
        const low = hex4(raw, i + 2);
        if (low >= 0xdc00 && low <= 0xdfff) {
          code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
          i += 6;
        }
      }
      if (code >= 0xd800 && code <= 0xdfff) out.loneSurrogate = true;
      pushCodePoint(out.bytes, <u32>code);
    } else if (e == 0x62) out.bytes.push(0x08);
    else if (e == 0x66) out.bytes.push(0x0c);
    else if (e == 0x6e) out.bytes.push(0x0a);
    else if (e == 0x72) out.bytes.push(0x0d);
    else if (e == 0x74) out.bytes.push(0x09);
    else out.bytes.push(<u8>e); // " \ /
  }
  return out;
}

function hex4(raw: Array<u8>, at: i32): i32 {
  let v = 0;
  for (let k = 0; k < 4; k++) v = (v << 4) | hexValue(<u32>raw[at + k]);
  return v;
}

function pushCodePoint(out: Array<u8>, cp: u32): void {
  if (cp < 0x80) out.push(<u8>cp);
  else if (cp < 0x800) { out.push(<u8>(0xc0 | (cp >> 6))); out.push(<u8>(0x80 | (cp & 0x3f))); }
  else if (cp < 0x10000) {
    out.push(<u8>(0xe0 | (cp >> 12)));
    out.push(<u8>(0x80 | ((cp >> 6) & 0x3f)));
    out.push(<u8>(0x80 | (cp & 0x3f)));
  } else {
    out.push(<u8>(0xf0 | (cp >> 18)));
    out.push(<u8>(0x80 | ((cp >> 12) & 0x3f)));
    out.push(<u8>(0x80 | ((cp >> 6) & 0x3f)));
    out.push(<u8>(0x80 | (cp & 0x3f)));
  }
}

function equalsAscii(bytes: Array<u8>, text: string): bool {
  if (bytes.length != text.length) return false;
  for (let k = 0; k < bytes.length; k++) if (<u32>bytes[k] != <u32>text.charCodeAt(k)) return false;
  return true;
}

function isContinuation(c: u32): bool {
  return (c & 0xc0) == 0x80;
}

const ONES: u64 = 0x0101010101010101;
const HIGHS: u64 = 0x8080808080808080;

/** Bit 7 of each byte of `x` that is zero; exact for the lowest such byte (a borrow can mark a byte
 * above a zero byte, never one below). */
@inline function zeroBytes(x: u64): u64 {
  return (x - ONES) & ~x & HIGHS;
}

/** Whether all eight bytes of `x` are printable ASCII other than the quote and the backslash: the
 * same as `specialBytes(x) == 0` below, with early exits, for the hottest loop of the scan (the
 * plain run, which was slower in V8 through specialBytes). */
@inline function plainAscii8(x: u64): bool {
  if ((x & HIGHS) != 0) return false; // a byte above 0x7f
  // With every byte below 0x80, a byte below 0x20 is one whose subtraction borrows into bit 7.
  if (((x - 0x20 * ONES) & HIGHS) != 0) return false;
  return zeroBytes(x ^ (0x22 * ONES)) == 0 && zeroBytes(x ^ (0x5c * ONES)) == 0;
}

/**
 * Bit 7 of each byte of `x` (eight bytes little-endian: the first is the low byte) that a string
 * scan must look at: a quote, a backslash, a control byte (below 0x20) or a byte above 0x7f. Exact
 * for the lowest such byte, which is all the caller uses: a byte below 0x20 borrows into the bytes
 * above it, never into one below.
 */
@inline function specialBytes(x: u64): u64 {
  return (x & HIGHS) | ((x - 0x20 * ONES) & ~x & HIGHS) | zeroBytes(x ^ (0x22 * ONES)) | zeroBytes(x ^ (0x5c * ONES));
}

/** Each byte's value as a hex digit, or 0xff (the four digits of a \u escape are checked at once). */
const HEX_VALUES: StaticArray<u8> = hexTable();

function hexTable(): StaticArray<u8> {
  const t = new StaticArray<u8>(256);
  for (let c = 0; c < 256; c++) {
    const v = hexValue(<u32>c);
    t[c] = v < 0 ? 0xff : <u8>v;
  }
  return t;
}

/** Whether the four bytes at `at` are hex digits. */
@inline function hex4At(at: usize): bool {
  const t = changetype<usize>(HEX_VALUES);
  return (<u32>load<u8>(t + <usize>load<u8>(at)) | <u32>load<u8>(t + <usize>load<u8>(at + 1)) |
    <u32>load<u8>(t + <usize>load<u8>(at + 2)) | <u32>load<u8>(t + <usize>load<u8>(at + 3))) < 16;
}

/** Whether `e` may follow a backslash on its own: " \ / b f n r t. */
@inline function simpleEscape(e: u32): bool {
  return e == 0x22 || e == 0x5c || e == 0x2f || e == 0x62 || e == 0x66 || e == 0x6e || e == 0x72 || e == 0x74;
}

/**
 * The length of the valid UTF-8 sequence whose lead byte (0x80 or above) is at `i`, or 0 when it is
 * invalid or the chunk cuts it. Encoded surrogates (ED A0..BF ..) are valid, as in Python's
 * 'surrogatepass'. With four bytes in the chunk, the sequence is checked in one 32-bit read (bytes
 * little-endian: the lead is the low byte); a text in a non-Latin script is mostly such sequences.
 */
@inline function utf8SequenceAt(ptr: usize, i: usize, len: usize): usize {
  if (i + 4 <= len) {
    const x = load<u32>(ptr + i);
    // 110xxxxx 10xxxxxx, lead C2..DF (C0 and C1 are overlong).
    if ((x & 0xc0e0) == 0x80c0) return (x & 0x1e) != 0 ? 2 : 0;
    // 1110xxxx 10xxxxxx 10xxxxxx; after E0 the second byte must be A0 or above (not overlong).
    if ((x & 0xc0c0f0) == 0x8080e0) return (x & 0x200f) != 0 ? 3 : 0;
    // 11110xxx and three continuations, lead F0..F4; after F0 at least 90, after F4 at most 8F.
    if ((x & 0xc0c0c0f8) == 0x808080f0) {
      const c = x & 0xff;
      const b1 = (x >> 8) & 0xff;
      return c > 0xf4 || (c == 0xf0 && b1 < 0x90) || (c == 0xf4 && b1 > 0x8f) ? 0 : 4;
    }
    return 0;
  }
  const c = <u32>load<u8>(ptr + i);
  if (c >= 0xc2 && c <= 0xdf) return i + 1 < len && isContinuation(<u32>load<u8>(ptr + i + 1)) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (i + 2 >= len) return 0;
    const b1 = <u32>load<u8>(ptr + i + 1);
    return isContinuation(b1) && (c != 0xe0 || b1 >= 0xa0) && isContinuation(<u32>load<u8>(ptr + i + 2)) ? 3 : 0;
  }
  // A four-byte sequence with fewer than four bytes left in the chunk is cut.
  return 0;
}

/**
 * The fast path through a string nobody needs: skips, from `i`, plain ASCII, valid escapes and
 * valid UTF-8 sequences that lie wholly inside this chunk, and returns the offset of the first byte
 * that needs the careful path (the closing quote, anything invalid, or a sequence the chunk cuts).
 * It accepts exactly what the careful path accepts (test/unit/scanner-property.test.ts).
 */
function skipStringRun(ptr: usize, from: usize, len: usize): usize {
  let i = from;
  while (i < len) {
    // Eight bytes at a time while none of them needs a look (an English prompt is mostly such
    // runs); then straight to the first that does.
    while (i + 8 <= len && plainAscii8(load<u64>(ptr + i))) i += 8;
    if (i + 8 <= len) i += <usize>(ctz(specialBytes(load<u64>(ptr + i))) >> 3);
    else if (i >= len) break;
    const c = <u32>load<u8>(ptr + i);
    if (c >= 0x80) {
      // A run of non-ASCII characters (a text in a non-Latin script), without the ASCII test.
      do {
        // Two three-byte characters per eight-byte read while they last (a Chinese or Japanese
        // text), each checked as utf8SequenceAt would: lead E0..EF, two continuations, not overlong.
        while (i + 8 <= len) {
          const x = load<u64>(ptr + i);
          if ((x & 0xc0c0f0c0c0f0) != 0x8080e08080e0 || (x & 0x200f) == 0 || (x & 0x200f000000) == 0) break;
          i += 6;
        }
        const n = utf8SequenceAt(ptr, i, len);
        if (n == 0) return i;
        i += n;
      } while (i < len && <u32>load<u8>(ptr + i) >= 0x80);
      continue;
    }
    if (c == 0x5c) {
      // A run of escapes (Python's json.dumps writes every non-ASCII character as \uXXXX).
      do {
        if (i + 1 >= len) return i;
        const e = <u32>load<u8>(ptr + i + 1);
        if (e == 0x75) {
          if (i + 5 >= len || !hex4At(ptr + i + 2)) return i;
          i += 6;
        } else if (simpleEscape(e)) i += 2;
        else return i;
      } while (i < len && <u32>load<u8>(ptr + i) == 0x5c);
      continue;
    }
    // The closing quote or a control byte ends the fast path; a plain byte is one of the last seven.
    if (c < 0x20 || c == 0x22) return i;
    i++;
  }
  return i;
}

export class ModelScanner {
  /** Decoded model name (valid once `Found`). */
  model: string = "";
  /** Absolute offset of the opening quote of the model value. */
  valueStart: i64 = -1;
  /** Absolute offset just past the closing quote of the model value. */
  valueEnd: i64 = -1;
  /** Why the body was refused (valid once `Invalid`). */
  error: string = "";
  errorKind: ScanError = ScanError.None;
  /** Bytes consumed so far: the absolute offset of the next byte to feed. */
  consumed: i64 = 0;
  /** Raw leading bytes of the prompt value; `promptLength` of them are valid. */
  promptPrefix: StaticArray<u8> = new StaticArray<u8>(PROMPT_PREFIX_BYTES);
  promptLength: i32 = 0;

  private result: ScanResult = ScanResult.NeedMore;
  private state: State = State.BeforeRoot;
  /** One bit per open container, 1 = object; bit 0 is the root object. */
  private stack: StaticArray<u8> = new StaticArray<u8>(MAX_DEPTH / 8 + 1);
  private depth: i32 = 0;

  // The string being scanned.
  private str: Str = Str.Skip;
  /** 0: none; 1: after a backslash; 2..5: that many hex digits of a \u escape still due, minus 1. */
  private escape: i32 = 0;
  /** UTF-8 continuation bytes still due, and the allowed range of the next one. */
  private utfNeed: i32 = 0;
  private utfLow: u32 = 0x80;
  private utfHigh: u32 = 0xbf;
  private raw: Array<u8> = new Array<u8>();
  private rawOverflow: bool = false;

  // The number or literal being scanned.
  private num: Num = Num.Int;
  private literal: string = "";
  private literalAt: i32 = 0;

  // What the root object's current key is.
  private keyIsModel: bool = false;
  private keyIsPrompt: bool = false;
  private modelSeen: bool = false;
  private duplicateModel: bool = false;
  private promptSeen: bool = false;
  private capturing: bool = false;
  private bomAt: i32 = 0;
  /** The model value's problem, reported at the end unless a syntax error comes first. */
  private deferred: ScanError = ScanError.None;
  private deferredMessage: string = "";

  get status(): ScanResult { return this.result; }

  /** Feeds `len` bytes at `ptr`; they are the body bytes at absolute offset `consumed`. */
  feed(ptr: usize, len: usize): ScanResult {
    let i: usize = 0;
    while (i < len && this.result == ScanResult.NeedMore) {
      if (this.state == State.InString && this.str <= Str.Key && this.escape == 0 && this.utfNeed == 0) {
        const from = i;
        i = skipStringRun(ptr, i, len);
        if (this.capturing && i > from) this.captureRun(ptr + from, i - from);
        if (i >= len) break;
      }
      this.step(<u32>load<u8>(ptr + i), this.consumed + <i64>i);
      i++;
    }
    this.consumed += <i64>len;
    return this.result;
  }

  /** The body ended. */
  finish(): ScanResult {
    if (this.result != ScanResult.NeedMore) return this.result;
    if (this.state == State.BeforeRoot) { this.fail(ScanError.Syntax, "request body is empty"); return this.result; }
    if (this.state != State.AfterRoot) { this.fail(ScanError.Syntax, "unexpected end of JSON body"); return this.result; }
    // A second "model" outranks what is wrong with either value: the server would read the last.
    if (this.duplicateModel) this.fail(ScanError.DuplicateModel, "the JSON object has more than one \"model\" key");
    else if (this.deferred != ScanError.None) this.fail(this.deferred, this.deferredMessage);
    else this.result = this.modelSeen ? ScanResult.Found : ScanResult.Missing;
    return this.result;
  }

  private fail(kind: ScanError, message: string): void {
    this.errorKind = kind;
    this.error = message;
    this.result = ScanResult.Invalid;
  }

  private defer(kind: ScanError, message: string): void {
    if (this.deferred == ScanError.None) { this.deferred = kind; this.deferredMessage = message; }
  }

  private step(c: u32, at: i64): void {
    if (this.capturing) this.capture(c);
    this.dispatch(c, at);
  }

  private dispatch(c: u32, at: i64): void {
    switch (this.state) {
      case State.InString: { this.stringByte(c, at); return; }
      case State.InNumber: { this.numberByte(c, at); return; }
      case State.InLiteral: {
        if (c != <u32>this.literal.charCodeAt(this.literalAt)) { this.fail(ScanError.Syntax, "invalid literal in a JSON value"); return; }
        if (++this.literalAt == this.literal.length) this.endValue();
        return;
      }
      case State.BeforeRoot: {
        // One UTF-8 byte order mark may open the body (Python's json.loads accepts it in bytes).
        if (this.bomAt > 0 && this.bomAt < 3) {
          if (c != (this.bomAt == 1 ? 0xbb : 0xbf)) { this.fail(ScanError.Syntax, "invalid UTF-8 byte order mark"); return; }
          this.bomAt++;
          return;
        }
        if (at == 0 && c == 0xef) { this.bomAt = 1; return; }
        if (isWhitespace(c)) return;
        if (c != 0x7b) { this.fail(ScanError.Syntax, "request body must be a JSON object"); return; }
        this.push(true);
        this.state = State.ObjectKeyOrEnd;
        return;
      }
      case State.ObjectKeyOrEnd:
      case State.ObjectKey: {
        if (isWhitespace(c)) return;
        if (c == 0x22) { this.startString(this.depth == 1 ? Str.RootKey : Str.Key); return; }
        if (c == 0x7d && this.state == State.ObjectKeyOrEnd) { this.pop(); return; }
        this.fail(ScanError.Syntax, "expected a string key in a JSON object");
        return;
      }
      case State.Colon: {
        if (isWhitespace(c)) return;
        if (c != 0x3a) { this.fail(ScanError.Syntax, "expected ':' after a key"); return; }
        this.state = State.Value;
        return;
      }
      case State.ArrayValueOrEnd: {
        if (isWhitespace(c)) return;
        if (c == 0x5d) { this.pop(); return; }
        this.startValue(c, at);
        return;
      }
      case State.Value: {
        if (isWhitespace(c)) return;
        this.startValue(c, at);
        return;
      }
      case State.AfterValue: {
        if (isWhitespace(c)) return;
        const inObject = this.topIsObject();
        if (c == 0x2c) { this.state = inObject ? State.ObjectKey : State.Value; return; }
        if ((c == 0x7d && inObject) || (c == 0x5d && !inObject)) { this.pop(); return; }
        this.fail(ScanError.Syntax, inObject ? "expected ',' or '}' after a value" : "expected ',' or ']' after a value");
        return;
      }
      case State.AfterRoot: {
        if (!isWhitespace(c)) this.fail(ScanError.Syntax, "extra data after the JSON object");
        return;
      }
      default:
        return;
    }
  }

  private startValue(c: u32, at: i64): void {
    const rootValue = this.depth == 1;
    if (rootValue && this.keyIsPrompt && !this.promptSeen) {
      this.promptSeen = true;
      this.capturing = true;
      this.capture(c);
    }
    const isModel = rootValue && this.keyIsModel;
    if (isModel && c != 0x22) this.defer(ScanError.ModelNotString, "\"model\" must be a string");
    if (c == 0x22) {
      if (isModel) this.valueStart = at;
      this.startString(isModel ? Str.Model : Str.Skip);
    } else if (c == 0x7b) {
      this.push(true);
      this.state = State.ObjectKeyOrEnd;
    } else if (c == 0x5b) {
      this.push(false);
      this.state = State.ArrayValueOrEnd;
    } else if (c == 0x2d) {
      this.num = Num.AfterMinus;
      this.state = State.InNumber;
    } else if (isDigit(c)) {
      this.num = c == 0x30 ? Num.Zero : Num.Int;
      this.state = State.InNumber;
    } else {
      for (let k = 0; k < LITERALS.length; k++) {
        if (<u32>LITERALS[k].charCodeAt(0) == c) { this.startLiteral(LITERALS[k]); return; }
      }
      this.fail(ScanError.Syntax, "unexpected character in a JSON value");
    }
  }

  private startLiteral(text: string): void {
    this.literal = text;
    this.literalAt = 1;
    this.state = State.InLiteral;
  }

  /** A value (scalar or container) ended at this depth. */
  private endValue(): void {
    if (this.depth == 1 && this.capturing) this.capturing = false;
    this.state = State.AfterValue;
  }

  private push(object: bool): void {
    if (this.depth >= MAX_DEPTH) { this.fail(ScanError.TooDeep, "JSON body is nested more than " + MAX_DEPTH.toString() + " levels deep"); return; }
    const byte = this.depth >> 3;
    const bit = <u8>(1 << <u8>(this.depth & 7));
    this.stack[byte] = object ? this.stack[byte] | bit : this.stack[byte] & ~bit;
    this.depth++;
  }

  private pop(): void {
    this.depth--;
    if (this.depth == 0) { this.capturing = false; this.state = State.AfterRoot; return; }
    this.endValue();
  }

  private topIsObject(): bool {
    const d = this.depth - 1;
    return (this.stack[d >> 3] & <u8>(1 << <u8>(d & 7))) != 0;
  }

  private startString(kind: Str): void {
    this.str = kind;
    this.escape = 0;
    this.utfNeed = 0;
    this.rawOverflow = false;
    if (kind > Str.Key) this.raw = new Array<u8>();
    this.state = State.InString;
  }

  private keep(c: u32): void {
    if (this.str <= Str.Key) return;
    const limit = this.str == Str.RootKey ? MAX_KEY_BYTES : MAX_MODEL_RAW_BYTES;
    if (this.raw.length < limit) this.raw.push(<u8>c);
    else this.rawOverflow = true;
  }

  private stringByte(c: u32, at: i64): void {
    if (this.escape == 1) {
      if (c == 0x75) this.escape = 5;
      else if (simpleEscape(c)) this.escape = 0;
      else { this.fail(ScanError.Syntax, "invalid escape in a JSON string"); return; }
      this.keep(c);
      return;
    }
    if (this.escape > 1) {
      if (hexValue(c) < 0) { this.fail(ScanError.Syntax, "invalid \\u escape in a JSON string"); return; }
      this.escape = this.escape == 2 ? 0 : this.escape - 1;
      this.keep(c);
      return;
    }
    if (this.utfNeed > 0) {
      if (c < this.utfLow || c > this.utfHigh) { this.fail(ScanError.Syntax, "invalid UTF-8 in a JSON string"); return; }
      this.utfNeed--;
      this.utfLow = 0x80;
      this.utfHigh = 0xbf;
      this.keep(c);
      return;
    }
    if (c == 0x22) { this.endString(at); return; }
    if (c == 0x5c) { this.escape = 1; this.keep(c); return; }
    if (c < 0x20) { this.fail(ScanError.Syntax, "control character in a JSON string"); return; }
    if (c >= 0x80 && !this.utf8Lead(c)) { this.fail(ScanError.Syntax, "invalid UTF-8 in a JSON string"); return; }
    this.keep(c);
  }

  /** Starts a multi-byte UTF-8 sequence; false for a byte that cannot lead one. */
  private utf8Lead(c: u32): bool {
    if (c >= 0xc2 && c <= 0xdf) { this.utfNeed = 1; return true; }
    if (c >= 0xe0 && c <= 0xef) {
      this.utfNeed = 2;
      // E0 must not be overlong. ED leads the surrogates, which Python's 'surrogatepass' accepts.
      if (c == 0xe0) this.utfLow = 0xa0;
      return true;
    }
    if (c >= 0xf0 && c <= 0xf4) {
      this.utfNeed = 3;
      if (c == 0xf0) this.utfLow = 0x90;
      if (c == 0xf4) this.utfHigh = 0x8f;
      return true;
    }
    return false;
  }

  private endString(at: i64): void {
    const kind = this.str;
    this.str = Str.Skip;
    if (kind == Str.Key) { this.state = State.Colon; return; }
    if (kind == Str.RootKey) { this.endRootKey(); return; }
    if (kind == Str.Model) this.endModel(at);
    this.endValue();
  }

  private endRootKey(): void {
    this.state = State.Colon;
    this.keyIsModel = false;
    this.keyIsPrompt = false;
    if (this.rawOverflow) return;
    const key = decodeString(this.raw).bytes;
    if (equalsAscii(key, "model")) {
      if (this.modelSeen) this.duplicateModel = true;
      this.modelSeen = true;
      this.keyIsModel = true;
    } else {
      this.keyIsPrompt = equalsAscii(key, "messages") || equalsAscii(key, "prompt") || equalsAscii(key, "input");
    }
  }

  private endModel(at: i64): void {
    this.valueEnd = at + 1;
    if (this.rawOverflow) { this.defer(ScanError.ModelTooLong, "\"model\" is longer than " + MAX_MODEL_BYTES.toString() + " bytes"); return; }
    const decoded = decodeString(this.raw);
    if (decoded.bytes.length > MAX_MODEL_BYTES) { this.defer(ScanError.ModelTooLong, "\"model\" is longer than " + MAX_MODEL_BYTES.toString() + " bytes"); return; }
    if (decoded.loneSurrogate) { this.defer(ScanError.ModelNotUnicode, "\"model\" is not valid Unicode (it contains an unpaired surrogate)"); return; }
    const buf = new ArrayBuffer(decoded.bytes.length);
    for (let k = 0; k < decoded.bytes.length; k++) store<u8>(changetype<usize>(buf) + k, decoded.bytes[k]);
    this.model = String.UTF8.decode(buf);
  }

  private numberByte(c: u32, at: i64): void {
    const digit = isDigit(c);
    switch (this.num) {
      case Num.AfterMinus: {
        if (c == 0x49) { this.startLiteral("Infinity"); return; } // -Infinity
        if (!digit) break;
        this.num = c == 0x30 ? Num.Zero : Num.Int;
        return;
      }
      case Num.Zero:
      case Num.Int: {
        if (digit && this.num == Num.Int) return;
        if (c == 0x2e) { this.num = Num.AfterDot; return; }
        if (c == 0x65 || c == 0x45) { this.num = Num.AfterE; return; }
        this.endNumber(c, at);
        return;
      }
      case Num.AfterDot: {
        if (!digit) break;
        this.num = Num.Frac;
        return;
      }
      case Num.Frac: {
        if (digit) return;
        if (c == 0x65 || c == 0x45) { this.num = Num.AfterE; return; }
        this.endNumber(c, at);
        return;
      }
      case Num.AfterE: {
        if (c == 0x2b || c == 0x2d) { this.num = Num.AfterESign; return; }
        if (!digit) break;
        this.num = Num.Exp;
        return;
      }
      case Num.AfterESign: {
        if (!digit) break;
        this.num = Num.Exp;
        return;
      }
      case Num.Exp: {
        if (digit) return;
        this.endNumber(c, at);
        return;
      }
    }
    this.fail(ScanError.Syntax, "invalid number in a JSON value");
  }

  /** A complete number ended at `c`, which belongs to what follows it (and was captured once,
   * if the prompt is being captured). */
  private endNumber(c: u32, at: i64): void {
    this.endValue();
    this.dispatch(c, at);
  }

  /** Appends a run of prompt bytes, as far as the prefix buffer has room. */
  private captureRun(from: usize, n: usize): void {
    const room = <usize>(PROMPT_PREFIX_BYTES - this.promptLength);
    const take = n < room ? n : room;
    memory.copy(changetype<usize>(this.promptPrefix) + <usize>this.promptLength, from, take);
    this.promptLength += <i32>take;
    if (this.promptLength >= PROMPT_PREFIX_BYTES) this.capturing = false;
  }

  /** Appends a byte of the prompt value; the capture ends when the prefix buffer is full. */
  private capture(c: u32): void {
    if (this.promptLength < PROMPT_PREFIX_BYTES) this.promptPrefix[this.promptLength++] = <u8>c;
    if (this.promptLength >= PROMPT_PREFIX_BYTES) this.capturing = false;
  }
}
