// Protobuf at the wire level: a message as its ordered list of fields, each kept as the exact
// bytes it arrived in. Envoy Gateway sends whole xDS resources and takes back what we return; a
// decode/re-encode through generated types would drop every field our vendored protos predate.
// Editing at this level changes only the fields we touch and keeps everything else byte for byte.
import protobuf from "protobufjs";

/** Protobuf wire types. */
export const WIRE_VARINT = 0;
export const WIRE_LENGTH_DELIMITED = 2;

export interface WireField {
  field: number;
  wireType: number;
  /** The field's payload: for length-delimited fields the bytes inside the length prefix. */
  bytes: Uint8Array;
}

export class WireMessage {
  constructor(public fields: WireField[] = []) {}

  static decode(bytes: Uint8Array): WireMessage {
    const reader = protobuf.Reader.create(bytes);
    const fields: WireField[] = [];
    while (reader.pos < reader.len) {
      const tag = reader.uint32();
      const field = tag >>> 3;
      const wireType = tag & 7;
      const start = reader.pos;
      if (wireType === WIRE_LENGTH_DELIMITED) {
        fields.push({ field, wireType, bytes: reader.bytes() });
        continue;
      }
      reader.skipType(wireType);
      fields.push({ field, wireType, bytes: bytes.subarray(start, reader.pos) });
    }
    return new WireMessage(fields);
  }

  encode(): Uint8Array {
    const parts: Uint8Array[] = [];
    for (const f of this.fields) {
      parts.push(varint((f.field << 3) | f.wireType));
      // Length-delimited payloads get their length back; other payloads are kept whole.
      if (f.wireType === WIRE_LENGTH_DELIMITED) parts.push(varint(f.bytes.length));
      parts.push(f.bytes);
    }
    return Buffer.concat(parts);
  }

  all(field: number): WireField[] { return this.fields.filter((f) => f.field === field); }
  first(field: number): WireField | undefined { return this.fields.find((f) => f.field === field); }
  string(field: number): string | undefined {
    const f = this.first(field);
    return f ? Buffer.from(f.bytes).toString("utf8") : undefined;
  }
  /** A varint field's value (enums, bools, small ints). */
  varint(field: number): number | undefined {
    const f = this.first(field);
    return f && f.wireType === WIRE_VARINT ? protobuf.Reader.create(f.bytes).uint32() : undefined;
  }
  remove(...fields: number[]): void { this.fields = this.fields.filter((f) => !fields.includes(f.field)); }
  /** Appends a length-delimited field (an embedded message, string or bytes). */
  add(field: number, bytes: Uint8Array): void { this.fields.push({ field, wireType: WIRE_LENGTH_DELIMITED, bytes }); }
  addVarint(field: number, value: number): void {
    this.fields.push({ field, wireType: WIRE_VARINT, bytes: varint(value) });
  }
}

function varint(value: number): Uint8Array {
  const out: number[] = [];
  let v = value >>> 0;
  while (v >= 0x80) { out.push((v & 0x7f) | 0x80); v >>>= 7; }
  out.push(v);
  return Uint8Array.from(out);
}
