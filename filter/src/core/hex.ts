// Hex digits and hex text, for percent-decoding a path (routes.ts) and the snapshot's
// `load-channel` record (snapshot.ts: a serialized envoy.config.core.v3.GrpcService in hex).
//
// Pure module: no host imports.

/** The value of a hex digit (either case), or -1. */
export function hexDigit(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/** The bytes `text` spells in hex; null if it is empty, of odd length or not hex. */
export function decodeHex(text: string): ArrayBuffer | null {
  const n = text.length;
  if (n == 0 || (n & 1) != 0) return null;
  const out = new ArrayBuffer(n >> 1);
  const base = changetype<usize>(out);
  for (let i = 0; i < n; i += 2) {
    const hi = hexDigit(text.charCodeAt(i));
    const lo = hexDigit(text.charCodeAt(i + 1));
    if (hi < 0 || lo < 0) return null;
    store<u8>(base + <usize>(i >> 1), <u8>((hi << 4) | lo));
  }
  return out;
}
