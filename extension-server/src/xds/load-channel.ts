// The load channel's server side (proto/infergate/load.proto): every infergate filter root context
// on every Envoy thread (its workers and its main thread) holds one Watch stream, and each load the
// publisher renders is written to all of them at once. A new stream is answered with the current load. A stream that cannot take
// more (its Envoy reads slowly) is written again only when it drains, and then with the newest
// load only: nothing queues up behind a slow reader.
import * as grpc from "@grpc/grpc-js";
import { LOAD_METHOD, LOAD_SERVICE } from "../contract.ts";
import { protoRoot } from "./protos.ts";

export interface Load { version: string; text: string }

/** Streams served at most; more are refused (RESOURCE_EXHAUSTED) until some close. An Envoy holds
 * one per thread per live filter configuration (a few per thread while a push is applied). */
export const DEFAULT_MAX_LOAD_STREAMS = 4096;

class Watcher {
  /** The version last written; "" before the first. */
  sent = "";
  /** Whether the stream's buffer is full: write again on `drain`. */
  blocked = false;
  constructor(readonly call: grpc.ServerWritableStream<object, Load>, readonly peer: string) {}
}

export class LoadChannel {
  private latest?: Load;
  private readonly watchers = new Set<Watcher>();

  constructor(private readonly maxStreams = DEFAULT_MAX_LOAD_STREAMS) {}

  /** Open streams (each a root context on an Envoy thread). */
  get streams(): number { return this.watchers.size; }

  /** The last load published. */
  get current(): Load | undefined { return this.latest; }

  /** Sends `load` to every stream (and to each new one, until the next). */
  publish(load: Load): void {
    this.latest = load;
    for (const w of this.watchers) this.write(w);
  }

  /** The service, for grpc.Server.addService. */
  service(): { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation } {
    const root = protoRoot();
    const request = root.lookupType("infergate.load.v1.WatchRequest");
    const response = root.lookupType("infergate.load.v1.Load");
    const definition = {
      [LOAD_METHOD]: {
        path: `/${LOAD_SERVICE}/${LOAD_METHOD}`,
        requestStream: false,
        responseStream: true,
        requestSerialize: (m: object) => Buffer.from(request.encode(request.fromObject(m)).finish()),
        requestDeserialize: (b: Buffer) => request.toObject(request.decode(b)),
        responseSerialize: (m: Load) => Buffer.from(response.encode(response.fromObject(m)).finish()),
        responseDeserialize: (b: Buffer) => response.toObject(response.decode(b)) as Load,
      },
    } as grpc.ServiceDefinition;
    return { definition, implementation: { [LOAD_METHOD]: (call: grpc.ServerWritableStream<object, Load>) => this.watch(call) } };
  }

  private watch(call: grpc.ServerWritableStream<object, Load>): void {
    if (this.watchers.size >= this.maxStreams) {
      call.emit("error", { code: grpc.status.RESOURCE_EXHAUSTED, details: `more than ${this.maxStreams} load streams` });
      return;
    }
    const w = new Watcher(call, call.getPeer());
    this.watchers.add(w);
    const drop = (): void => { this.watchers.delete(w); };
    call.on("cancelled", drop);
    call.on("error", drop);
    call.on("close", drop);
    call.on("finish", drop);
    call.on("drain", () => {
      w.blocked = false;
      this.write(w);
    });
    this.write(w);
  }

  private write(w: Watcher): void {
    const load = this.latest;
    if (!load || w.blocked || w.sent === load.version || !this.watchers.has(w)) return;
    w.sent = load.version;
    if (!w.call.write(load)) w.blocked = true;
  }
}
