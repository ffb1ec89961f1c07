// A tiny endpoint picker for tests: an Envoy ext_proc server (gRPC, plaintext HTTP/2) that speaks
// the Inference Extension's endpoint picker protocol the way the EPP v1.5.0 does, with the choice
// made by the test. Per request:
//   - it collects the request headers and the whole body (FULL_DUPLEX_STREAMED), then answers the
//     headers with `x-gateway-destination-endpoint: <list>` and the same list in the `envoy.lb`
//     dynamic metadata (or only one of them), clears the route cache, and streams the body back;
//   - or it answers with an immediate response (the EPP's 429/503);
//   - on the response path it records the `envoy.lb` metadata Envoy forwards (the served endpoint)
//     and echoes it in the response header `x-picker-saw-served`.
// It can be stopped and started again on the same port, to see what the gateway does without it.
import * as grpc from "@grpc/grpc-js";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import protobuf from "protobufjs";

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));

function loadTypes(): { request: protobuf.Type; response: protobuf.Type } {
  const root = new protobuf.Root();
  const common = dirname(require.resolve("protobufjs/package.json"));
  root.resolvePath = (origin, target) => (target.startsWith("google/protobuf/") ? join(common, target) : protobuf.util.path.resolve(origin, target));
  root.loadSync(join(here, "ext_proc.proto"), { keepCase: true });
  root.resolveAll();
  return { request: root.lookupType("envoy.service.ext_proc.v3.ProcessingRequest"), response: root.lookupType("envoy.service.ext_proc.v3.ProcessingResponse") };
}
const TYPES = loadTypes();

/** What the picker saw of one request. */
export interface PickerRequest {
  headers: Record<string, string>;
  body: string;
  /** `envoy.lb` metadata Envoy forwarded with the response headers (the served endpoint), if any. */
  responseMetadata?: Record<string, unknown> | undefined;
}

/** The picker's answer: an ordered endpoint list (sent as header and metadata, or only one), or an
 * immediate response. */
export type PickerAnswer =
  | { endpoints: string[]; via?: "both" | "header" | "metadata" }
  | { status: number; body?: string };

export interface FakePicker {
  /** `127.0.0.1:<port>` */
  readonly address: string;
  readonly port: number;
  /** Every request the picker has answered, in order. */
  readonly requests: PickerRequest[];
  /** Changes the choice for the next requests. */
  setPick(pick: (req: PickerRequest) => PickerAnswer): void;
  /** Stops listening, resetting every open stream (as a crash would). */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
}

// google.protobuf.Struct <-> plain values.
type Value = { nullValue?: number; numberValue?: number; stringValue?: string; boolValue?: boolean; structValue?: Struct; listValue?: { values?: Value[] } };
type Struct = { fields?: Record<string, Value> };
function fromValue(v: Value): unknown {
  if (v.structValue) return fromStruct(v.structValue);
  if (v.listValue) return (v.listValue.values ?? []).map(fromValue);
  return v.stringValue ?? v.numberValue ?? v.boolValue ?? null;
}
function fromStruct(s: Struct): Record<string, unknown> {
  return Object.fromEntries(Object.entries(s.fields ?? {}).map(([k, v]) => [k, fromValue(v)]));
}
const stringStruct = (fields: Record<string, string>): Struct => ({ fields: Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, { stringValue: v }])) });

const header = (key: string, value: string) => ({ header: { key, raw_value: Buffer.from(value) } });

interface HeaderMapMsg { headers?: Array<{ key: string; value?: string; raw_value?: Uint8Array }> }
function headersOf(map: HeaderMapMsg | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of map?.headers ?? []) out[h.key] = h.raw_value && h.raw_value.length > 0 ? Buffer.from(h.raw_value).toString() : (h.value ?? "");
  return out;
}

/** The answers to a request whose body is complete. */
function answer(pick: PickerAnswer, body: Buffer, endOfStreamInBody: boolean): unknown[] {
  if ("status" in pick) {
    return [{ immediate_response: { status: { code: pick.status }, body: Buffer.from(pick.body ?? `picker: ${pick.status}`), details: "fake_picker" } }];
  }
  const list = pick.endpoints.join(",");
  const via = pick.via ?? "both";
  return [
    {
      request_headers: { response: { clear_route_cache: true, header_mutation: { set_headers: via === "metadata" ? [] : [header("x-gateway-destination-endpoint", list)] } } },
      ...(via === "header" ? {} : { dynamic_metadata: { fields: { "envoy.lb": { structValue: stringStruct({ "x-gateway-destination-endpoint": list }) } } } }),
    },
    { request_body: { response: { body_mutation: { streamed_response: { body, end_of_stream: endOfStreamInBody } } } } },
  ];
}

function streamHandler(state: { pick: (req: PickerRequest) => PickerAnswer; requests: PickerRequest[] }) {
  return (call: grpc.ServerDuplexStream<any, any>) => {
    const seen: PickerRequest = { headers: {}, body: "" };
    const chunks: Buffer[] = [];
    const send = (messages: unknown[]): void => { for (const m of messages) call.write(m); };
    const decide = (endOfStreamInBody: boolean): void => {
      seen.body = Buffer.concat(chunks).toString();
      state.requests.push(seen);
      send(answer(state.pick(seen), Buffer.concat(chunks), endOfStreamInBody));
    };
    call.on("data", (req: any) => { try { onData(req); } catch (err) { console.error("fake picker:", err); call.destroy(err as Error); } });
    const onData = (req: any): void => {
      if (req.request_headers) {
        seen.headers = headersOf(req.request_headers.headers);
        if (req.request_headers.end_of_stream) decide(true);
      } else if (req.request_body) {
        chunks.push(Buffer.from(req.request_body.body ?? []));
        if (req.request_body.end_of_stream) decide(true);
      } else if (req.request_trailers) {
        decide(false);
        send([{ request_trailers: {} }]);
      } else if (req.response_headers) {
        const lb = req.metadata_context?.filter_metadata?.["envoy.lb"];
        seen.responseMetadata = lb ? fromStruct(lb) : undefined;
        const served = String(seen.responseMetadata?.["x-gateway-destination-endpoint-served"] ?? "none");
        send([{ response_headers: { response: { header_mutation: { set_headers: [header("x-picker-saw-served", served)] } } } }]);
      }
    };
    call.on("end", () => call.end());
    call.on("error", () => undefined);
  };
}

export async function startFakePicker(opts: { host?: string; port?: number; pick: (req: PickerRequest) => PickerAnswer }): Promise<FakePicker> {
  const host = opts.host ?? "127.0.0.1";
  const state = { pick: opts.pick, requests: [] as PickerRequest[] };
  const definition: grpc.ServiceDefinition = {
    Process: {
      path: "/envoy.service.ext_proc.v3.ExternalProcessor/Process",
      requestStream: true, responseStream: true,
      requestSerialize: (m: unknown) => Buffer.from(TYPES.request.encode(TYPES.request.fromObject(m as object)).finish()),
      requestDeserialize: (b: Buffer) => TYPES.request.toObject(TYPES.request.decode(b)),
      responseSerialize: (m: unknown) => Buffer.from(TYPES.response.encode(TYPES.response.fromObject(m as object)).finish()),
      responseDeserialize: (b: Buffer) => TYPES.response.toObject(TYPES.response.decode(b)),
    },
  };
  let server: grpc.Server | undefined;
  let port = opts.port ?? 0;
  const start = async (): Promise<void> => {
    const s = new grpc.Server();
    s.addService(definition, { Process: streamHandler(state) } as grpc.UntypedServiceImplementation);
    port = await new Promise<number>((resolve, reject) => s.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    server = s;
  };
  await start();
  return {
    get address() { return `${host}:${port}`; },
    get port() { return port; },
    requests: state.requests,
    setPick(pick) { state.pick = pick; },
    async stop() { server?.forceShutdown(); server = undefined; },
    start,
  };
}
