// Encodes a message written in Envoy's proto3 JSON form (the form of the bootstrap file and of
// Envoy's documentation) to protobuf, guided by the loaded types. It handles the well-known types
// that JSON writes differently from the message (Any as {"@type", ...fields}, Duration as "1.5s",
// wrappers as the bare value), and refuses any field or enum name the types do not know, so nothing
// is dropped silently.
import protobuf from "protobufjs";
import { protoRoot } from "./protos.ts";

export type Json = { [key: string]: unknown };

/** An Any as protobufjs (and DiscoveryResponse.resources) carry it. */
interface EncodedAny { type_url: string; value: Uint8Array }

const WRAPPERS = new Set(["Bool", "String", "Bytes", "Int32", "UInt32", "Int64", "UInt64", "Float", "Double"].map((t) => `google.protobuf.${t}Value`));

export function encodeJson(typeName: string, json: Json): Uint8Array {
  const type = protoRoot().lookupType(typeName);
  return type.encode(type.fromObject(toObject(type, json, typeName))).finish();
}

/** `{"@type": "type.googleapis.com/<type>", ...fields}` encoded as an Any. */
export function encodeAny(json: Json, path = "Any"): EncodedAny {
  const { "@type": url, ...fields } = json;
  if (typeof url !== "string") throw new Error(`${path}: an Any needs "@type"`);
  return { type_url: url, value: encodeJson(url.slice(url.lastIndexOf("/") + 1), fields) };
}

function toObject(type: protobuf.Type, json: Json, path: string): Json {
  const out: Json = {};
  for (const [key, value] of Object.entries(json)) {
    const field = type.fields[key];
    const at = `${path}.${key}`;
    if (!field) throw new Error(`${at}: ${type.fullName.slice(1)} has no such field`);
    field.resolve();
    if (field.map) out[key] = Object.fromEntries(Object.entries(value as Json).map(([k, v]) => [k, fieldValue(field, v, `${at}[${k}]`)]));
    else if (field.repeated) out[key] = (value as unknown[]).map((v, i) => fieldValue(field, v, `${at}[${i}]`));
    else out[key] = fieldValue(field, value, at);
  }
  return out;
}

function fieldValue(field: protobuf.Field, value: unknown, path: string): unknown {
  const t = field.resolvedType;
  if (t instanceof protobuf.Enum) {
    if (typeof value === "string" && t.values[value] === undefined) throw new Error(`${path}: ${t.fullName.slice(1)} has no value ${value}`);
    return value;
  }
  if (!(t instanceof protobuf.Type)) return value;
  const name = t.fullName.slice(1);
  if (name === "google.protobuf.Any") return encodeAny(value as Json, path);
  if (name === "google.protobuf.Duration") return duration(value, path);
  if (WRAPPERS.has(name)) return { value };
  return toObject(t, value as Json, path);
}

function duration(value: unknown, path: string): { seconds: number; nanos: number } {
  const m = typeof value === "string" ? /^(\d+)(?:\.(\d{1,9}))?s$/.exec(value) : null;
  if (!m) throw new Error(`${path}: a Duration is written like "1.5s", not ${JSON.stringify(value)}`);
  return { seconds: Number(m[1]), nanos: Number((m[2] ?? "").padEnd(9, "0")) };
}
