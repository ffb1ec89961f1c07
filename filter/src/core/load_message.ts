// The load channel's messages, encoded and decoded without host calls (load_channel.ts uses them):
//
// - the one request the filter sends: an `infergate.load.v1.WatchRequest`;
// - each message the extension server sends on that stream: an `infergate.load.v1.Load`
//   (proto/infergate/load.proto), fields `string version = 1; string text = 2;`. Fields of other
//   numbers are skipped, so a newer server can add some.
//
// Pure module: no host imports.

/** The stream's one request, `infergate.load.v1.WatchRequest { string snapshot_version = 1; }`,
 * with the field written even when empty: an empty message is never sent (Envoy's Google gRPC
 * client would send none at all, and the server needs one). */
export function encodeWatchRequest(snapshotVersion: string): ArrayBuffer {
  const text = String.UTF8.encode(snapshotVersion);
  let len = text.byteLength;
  let lenBytes = 1;
  for (let v = len >>> 7; v != 0; v >>>= 7) lenBytes++;
  const out = new ArrayBuffer(1 + lenBytes + len);
  const base = changetype<usize>(out);
  store<u8>(base, 0x0a); // field 1, length-delimited
  let at = base + 1;
  while (len >= 0x80) {
    store<u8>(at++, <u8>((len & 0x7f) | 0x80));
    len >>>= 7;
  }
  store<u8>(at++, <u8>len);
  memory.copy(at, changetype<usize>(text), text.byteLength);
  return out;
}

/** A decoded Load message; `error` is non-empty when the bytes were not one. */
export class LoadMessage {
  version: string = "";
  text: string = "";
  error: string = "";
}

/** Reads a protobuf varint at `at` (below `end`); sets `next` past it, or -1 if it is cut off or
 * longer than 10 bytes. */
class Varint {
  value: u64 = 0;
  next: isize = -1;
}

function readVarint(base: usize, at: isize, end: isize, out: Varint): void {
  let value: u64 = 0;
  for (let shift: u64 = 0; shift < 70; shift += 7) {
    if (at >= end) { out.next = -1; return; }
    const b = <u64>load<u8>(base + <usize>at);
    at++;
    value |= (b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      out.value = value;
      out.next = at;
      return;
    }
  }
  out.next = -1;
}

/** Decodes the `len` bytes at `ptr` as a Load message. */
export function decodeLoadMessage(ptr: usize, len: usize): LoadMessage {
  const m = new LoadMessage();
  const end = <isize>len;
  const v = new Varint();
  let at: isize = 0;
  while (at < end) {
    readVarint(ptr, at, end, v);
    if (v.next < 0) { m.error = "truncated field key"; return m; }
    at = v.next;
    const field = v.value >> 3;
    const wire = <i32>(v.value & 7);
    if (wire == 0) {
      readVarint(ptr, at, end, v);
      if (v.next < 0) { m.error = "truncated varint"; return m; }
      at = v.next;
    } else if (wire == 1 || wire == 5) {
      at += wire == 1 ? 8 : 4;
      if (at > end) { m.error = "truncated fixed field"; return m; }
    } else if (wire == 2) {
      readVarint(ptr, at, end, v);
      if (v.next < 0 || v.value > <u64>(end - v.next)) { m.error = "truncated length-delimited field"; return m; }
      const start = v.next;
      at = start + <isize>v.value;
      if (field == 1 || field == 2) {
        const text = String.UTF8.decodeUnsafe(ptr + <usize>start, <usize>(at - start));
        if (field == 1) m.version = text; else m.text = text;
      }
    } else {
      m.error = "unsupported wire type " + wire.toString();
      return m;
    }
  }
  if (m.version.length == 0) m.error = "no version";
  return m;
}
