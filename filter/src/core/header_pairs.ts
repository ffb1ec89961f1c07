// A header map as proxy_get_header_map_pairs serializes it: u32 count, then count × (u32 name
// length, u32 value length), then every name and value, each followed by a NUL byte. A host call
// costs Envoy a few microseconds whatever it does, so the filter takes the whole request header
// map in one call and looks up the few headers it needs here, instead of one call per header.
// Pure: the bytes are passed in, so tests can build them.

export class HeaderPairs {
  /** Whether the bytes are a well-formed serialization (a malformed one has no headers). */
  valid: bool = true;
  private base: usize = 0;
  private count: i32 = 0;
  /** Per header: offset of its name, name length, offset of its value, value length. */
  private spans: StaticArray<i32> = new StaticArray<i32>(0);

  /** `data` must stay alive as long as this object: it keeps a reference. */
  constructor(private data: ArrayBuffer) {
    this.base = changetype<usize>(data);
    this.count = this.parse(data.byteLength);
    if (this.count < 0) { this.valid = false; this.count = 0; }
  }

  /** Fills `spans`; the header count, or -1 when the bytes are malformed. */
  private parse(size: i32): i32 {
    if (size < 4) return -1;
    const n = <i64>load<u32>(this.base);
    // Each header takes at least 8 bytes of lengths and 2 NULs.
    if (n * 10 > <i64>size - 4) return -1;
    const spans = new StaticArray<i32>(<i32>n * 4);
    let at: i64 = 4 + n * 8;
    for (let i = 0; i < <i32>n; i++) {
      const nameLen = <i64>load<u32>(this.base + 4 + <usize>i * 8);
      const valueLen = <i64>load<u32>(this.base + 8 + <usize>i * 8);
      const valueAt = at + nameLen + 1;
      const end = valueAt + valueLen + 1;
      if (end > <i64>size || load<u8>(this.base + <usize>(valueAt - 1)) != 0 || load<u8>(this.base + <usize>(end - 1)) != 0) return -1;
      unchecked(spans[i * 4] = <i32>at);
      unchecked(spans[i * 4 + 1] = <i32>nameLen);
      unchecked(spans[i * 4 + 2] = <i32>valueAt);
      unchecked(spans[i * 4 + 3] = <i32>valueLen);
      at = end;
    }
    this.spans = spans;
    return <i32>n;
  }

  /** Index of the first header named `name` (lower case, as Envoy keeps names); -1 if none. */
  find(name: ArrayBuffer): i32 {
    const len = name.byteLength;
    const want = changetype<usize>(name);
    for (let i = 0; i < this.count; i++) {
      if (unchecked(this.spans[i * 4 + 1]) != len) continue;
      if (memory.compare(this.base + <usize>unchecked(this.spans[i * 4]), want, <usize>len) == 0) return i;
    }
    return -1;
  }

  has(name: ArrayBuffer): bool { return this.find(name) >= 0; }

  /** The first value of `name`; null when absent. */
  get(name: ArrayBuffer): string | null {
    const i = this.find(name);
    if (i < 0) return null;
    return String.UTF8.decodeUnsafe(this.base + <usize>unchecked(this.spans[i * 4 + 2]), <usize>unchecked(this.spans[i * 4 + 3]));
  }
}
