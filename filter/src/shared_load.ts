// This proxy's own load on each endpoint, shared by every worker thread through Envoy's shared
// data, so a burst between two snapshot pushes spreads across endpoints instead of every worker
// sending it to the one that looked best.
//
// Each VM instance (one per worker thread, and a new one whenever Envoy reloads a VM after a
// crash) owns one record and is its only writer, so an update never races and never gives up:
//   infergate/load/<id>     u32 n, then n × (u64 endpoint address hash, i64 pending prompt bytes, i64 in flight),
//                           then u64 picks made so far, u32 m, then the last m picks, oldest first,
//                           m × (u64 prompt prefix hash, u64 endpoint address hash)
// The picks let every worker know where the others sent a prefix: before a decision, a VM copies
// the picks the others made since it last looked into its own prefix memory (core/pick.ts), as if
// it had made them, so the proxy's workers keep one prefix memory between them rather than one each
// (with one each, a tenant's prompts spread over more replicas and hit their caches less often:
// bench/results/workloads.md). A VM that falls more than PICKS_KEPT picks behind another loses the
// older ones. Mirror picks (core/mirror.ts) stay in their own VM's memory.
// Instances announce themselves in a registry, refreshed at most every HEARTBEAT_MS by traffic
// (each request's pick, every 16th chunk of a streamed answer):
//   infergate/instances     u32 n, then n × (u32 id, u32 0, u64 last seen, ms)
//   infergate/next-instance u32 the next id to hand out
// Readers sum the records of instances seen within STALE_MS. An instance that stops (a crashed
// VM takes its streams' decrements with it) is ignored after STALE_MS, and after DEAD_MS its
// registry entry is removed and its record emptied: load it left behind decays instead of
// steering picks forever. Endpoints leave a record as soon as their counts are back to zero.
// There is no timer: Envoy's tick is per root context and never freed (a root context per snapshot
// push would leak one per push). The cost: an instance whose only streams wait more than STALE_MS
// for a first byte, with no new request on its worker, stops counting for the others until its
// next request or chunk; the engines' own waiting counts (the snapshot's `waiting=`) still do.
import { LoadSource, VM_MEMORY } from "./core/decide";
import { LocalLoad } from "./core/pick";
import { saturatingAdd } from "./core/saturating";
import { Pool } from "./core/snapshot";
import { currentTimeNanos, getSharedData, log, LogLevel, setSharedData, Status } from "./host/api";

export const HEARTBEAT_MS: u64 = 1000;
export const STALE_MS: u64 = 5000;
export const DEAD_MS: u64 = 30000;
/** Compare-and-swap retries on the registry before an update is logged as failed (contention
 * there is one write per instance per second, so this is never reached in practice). */
const MAX_CAS_ATTEMPTS: i32 = 10000;
/** Picks each record carries (16 bytes each). */
export const PICKS_KEPT: i32 = 16;

const NEXT_ID_KEY = String.UTF8.encode("infergate/next-instance");
const INSTANCES_KEY = String.UTF8.encode("infergate/instances");
const EMPTY = new ArrayBuffer(0);

function recordKey(id: u32): ArrayBuffer {
  return String.UTF8.encode("infergate/load/" + id.toString());
}

function nowMs(): u64 {
  return currentTimeNanos() / 1_000_000;
}

class Counts {
  pending: i64 = 0;
  inflight: i64 = 0;
}

class Instance {
  constructor(public id: u32, public seenMs: u64) {}
  /** How long ago it was last seen (0 if the clock reads earlier than that). */
  ageMs(now: u64): u64 { return now > this.seenMs ? now - this.seenMs : 0; }
}

function decodeInstances(data: ArrayBuffer | null): Array<Instance> {
  const out = new Array<Instance>();
  if (data === null || data.byteLength < 4) return out;
  const base = changetype<usize>(data);
  const n = min(<i32>load<u32>(base), (data.byteLength - 4) / 16);
  for (let i = 0; i < n; i++) {
    const at = base + 4 + <usize>i * 16;
    out.push(new Instance(load<u32>(at), load<u64>(at + 8)));
  }
  return out;
}

function encodeInstances(list: Array<Instance>): ArrayBuffer {
  const out = new ArrayBuffer(4 + list.length * 16);
  const base = changetype<usize>(out);
  store<u32>(base, list.length);
  for (let i = 0; i < list.length; i++) {
    const at = base + 4 + <usize>i * 16;
    store<u32>(at, list[i].id);
    store<u32>(at + 4, 0);
    store<u64>(at + 8, list[i].seenMs);
  }
  return out;
}

function sameIds(a: Array<u32>, b: Array<u32>): bool {
  if (a.length != b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] != b[i]) return false;
  return true;
}

export class SharedLoad extends LoadSource {
  /** This instance's id; 0 until registered. */
  private id: u32 = 0;
  /** The shared data key of this instance's record (set with the id: written on every count). */
  private ownKey: ArrayBuffer = EMPTY;
  private own: Map<u64, Counts> = new Map<u64, Counts>();
  /** Other live instances, as of the last heartbeat, and the shared data keys of their records. */
  private others: Array<u32> = new Array<u32>();
  private otherKeys: Array<ArrayBuffer> = new Array<ArrayBuffer>();
  private lastHeartbeat: u64 = 0;
  /** When this instance registered (ms; 0: not yet). */
  private registeredMs: u64 = 0;
  /** This VM's last PICKS_KEPT picks, a ring of (prefix hash, endpoint hash), and how many it made. */
  private picks: StaticArray<u64> = new StaticArray<u64>(PICKS_KEPT * 2);
  private pickCount: u64 = 0;
  /** Per other instance: how many of its picks are already in this VM's prefix memory. */
  private picksSeen: Map<u32, u64> = new Map<u32, u64>();

  /** This VM picked `endpointHash` for a prompt with prefix `prefix` (0: none); published with the
   * next count (add), which follows every pick. */
  notePick(prefix: u64, endpointHash: u64): void {
    const at = <i32>(this.pickCount % <u64>PICKS_KEPT) * 2;
    unchecked(this.picks[at] = prefix);
    unchecked(this.picks[at + 1] = endpointHash);
    this.pickCount++;
  }

  /** Adds to this instance's counts for an endpoint (by address hash); counts never go below 0.
   * No heartbeat here (a clock read is a host call): every add follows a pick (loadsOf) or a
   * response chunk, which heartbeat, in the same stream. `publish` false leaves the shared record
   * to the next add of the same callback, which writes them together. */
  add(endpointHash: u64, pendingDelta: i64, inflightDelta: i64, publish: bool = true): void {
    let c: Counts;
    if (this.own.has(endpointHash)) c = this.own.get(endpointHash);
    else { c = new Counts(); this.own.set(endpointHash, c); }
    c.pending = max<i64>(0, saturatingAdd(c.pending, pendingDelta));
    c.inflight = max<i64>(0, saturatingAdd(c.inflight, inflightDelta));
    if (c.pending == 0 && c.inflight == 0) this.own.delete(endpointHash);
    if (publish) this.writeOwn();
  }

  loadsOf(pool: Pool): Array<LocalLoad> {
    this.maybeHeartbeat();
    const n = pool.endpoints.length;
    const out = new Array<LocalLoad>(n);
    const index = new Map<u64, i32>();
    for (let i = 0; i < n; i++) {
      out[i] = new LocalLoad();
      index.set(pool.endpoints[i].hash, i);
    }
    const hashes = this.own.keys();
    for (let k = 0; k < hashes.length; k++) {
      if (!index.has(hashes[k])) continue;
      const c = this.own.get(hashes[k]);
      const l = out[index.get(hashes[k])];
      l.pendingPromptBytes = saturatingAdd(l.pendingPromptBytes, c.pending);
      l.inflight = saturatingAdd(l.inflight, c.inflight);
    }
    for (let k = 0; k < this.others.length; k++) this.addRecord(this.others[k], this.otherKeys[k], index, out);
    return out;
  }

  /** Announces this instance and refreshes the list of live ones, at most once per HEARTBEAT_MS.
   * An instance registers on its first pick (`mayRegister`), not when it is configured: for every new
   * plugin configuration (each snapshot push) Envoy configures a throwaway copy of the VM to check
   * it (proxy-wasm's "configuration canary") and discards it, and every such copy would otherwise
   * leave an instance whose empty record each worker reads on every pick until it goes stale. */
  maybeHeartbeat(mayRegister: bool = true): void {
    if (this.id == 0 && !mayRegister) return;
    const now = nowMs();
    if (this.lastHeartbeat != 0 && now - this.lastHeartbeat < HEARTBEAT_MS) {
      // The workers of an Envoy register as each makes its first pick, typically within the same
      // burst: in its first HEARTBEAT_MS a VM looks at the registry on every pick, so the first to
      // register does not route that burst blind to the others.
      if (now - this.registeredMs < HEARTBEAT_MS) this.readOthers(now);
      return;
    }
    this.lastHeartbeat = now;
    if (this.id == 0) {
      if (!this.register()) return;
      this.registeredMs = now;
    }
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const current = getSharedData(INSTANCES_KEY);
      if (current.status != Status.Ok && current.status != Status.NotFound) {
        log(LogLevel.Warn, "infergate: cannot read the instance registry: status " + current.status.toString());
        return;
      }
      const kept = new Array<Instance>();
      const dead = new Array<u32>();
      const others = new Array<u32>();
      const list = decodeInstances(current.data);
      for (let i = 0; i < list.length; i++) {
        const e = list[i];
        if (e.id == this.id) continue;
        const age = e.ageMs(now);
        if (age > DEAD_MS) { dead.push(e.id); continue; }
        kept.push(e);
        if (age <= STALE_MS) others.push(e.id);
      }
      kept.push(new Instance(this.id, now));
      const written = setSharedData(INSTANCES_KEY, encodeInstances(kept), current.status == Status.Ok ? current.cas : 0);
      if (written == Status.CasMismatch) continue;
      if (written != Status.Ok) {
        log(LogLevel.Warn, "infergate: cannot write the instance registry: status " + written.toString());
        return;
      }
      this.setOthers(others);
      // Whoever removes a dead instance empties its record (proxy-wasm cannot delete a key).
      for (let i = 0; i < dead.length; i++) {
        setSharedData(recordKey(dead[i]), EMPTY, 0);
        this.picksSeen.delete(dead[i]);
      }
      return;
    }
    log(LogLevel.Error, "infergate: instance registry update lost " + MAX_CAS_ATTEMPTS.toString() + " compare-and-swap races");
  }

  /** Refreshes the list of other live instances from the registry, without announcing this one. */
  private readOthers(now: u64): void {
    const current = getSharedData(INSTANCES_KEY);
    if (current.status != Status.Ok) return;
    const others = new Array<u32>();
    const list = decodeInstances(current.data);
    for (let i = 0; i < list.length; i++) {
      const e = list[i];
      if (e.id != this.id && e.ageMs(now) <= STALE_MS) others.push(e.id);
    }
    this.setOthers(others);
  }

  private setOthers(others: Array<u32>): void {
    if (sameIds(this.others, others)) return;
    this.others = others;
    this.otherKeys = others.map<ArrayBuffer>((id: u32) => recordKey(id));
  }

  /** Takes the next instance id from the shared counter. */
  private register(): bool {
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const current = getSharedData(NEXT_ID_KEY);
      let next: u32 = 1;
      if (current.status == Status.Ok && current.data !== null && current.data!.byteLength >= 4) next = load<u32>(changetype<usize>(current.data!));
      else if (current.status != Status.NotFound && current.status != Status.Ok) {
        log(LogLevel.Warn, "infergate: cannot read the instance counter: status " + current.status.toString());
        return false;
      }
      const value = new ArrayBuffer(4);
      store<u32>(changetype<usize>(value), next + 1 == 0 ? 1 : next + 1);
      const written = setSharedData(NEXT_ID_KEY, value, current.status == Status.Ok ? current.cas : 0);
      if (written == Status.CasMismatch) continue;
      if (written != Status.Ok) {
        log(LogLevel.Warn, "infergate: cannot write the instance counter: status " + written.toString());
        return false;
      }
      this.id = next;
      this.ownKey = recordKey(next);
      return true;
    }
    log(LogLevel.Error, "infergate: instance registration lost " + MAX_CAS_ATTEMPTS.toString() + " compare-and-swap races");
    return false;
  }

  private writeOwn(): void {
    if (this.id == 0) return; // not registered: nobody else can read it anyway
    const hashes = this.own.keys();
    const kept = <i32>min<u64>(this.pickCount, <u64>PICKS_KEPT);
    const picksAt = 4 + hashes.length * 24;
    const record = new ArrayBuffer(picksAt + 12 + kept * 16);
    const base = changetype<usize>(record);
    store<u32>(base, hashes.length);
    for (let k = 0; k < hashes.length; k++) {
      const at = base + 4 + <usize>k * 24;
      const c = this.own.get(hashes[k]);
      store<u64>(at, hashes[k]);
      store<i64>(at + 8, c.pending);
      store<i64>(at + 16, c.inflight);
    }
    const p = base + <usize>picksAt;
    store<u64>(p, this.pickCount);
    store<u32>(p + 8, kept);
    for (let i = 0; i < kept; i++) {
      const from = <i32>((this.pickCount - <u64>kept + <u64>i) % <u64>PICKS_KEPT) * 2;
      store<u64>(p + 12 + <usize>i * 16, unchecked(this.picks[from]));
      store<u64>(p + 20 + <usize>i * 16, unchecked(this.picks[from + 1]));
    }
    const status = setSharedData(this.ownKey, record, 0);
    if (status != Status.Ok) log(LogLevel.Warn, "infergate: cannot write load record: status " + status.toString());
  }

  private addRecord(id: u32, key: ArrayBuffer, index: Map<u64, i32>, out: Array<LocalLoad>): void {
    const record = getSharedData(key);
    if (record.status != Status.Ok) return; // NotFound: it has never routed anything
    const data = record.data!;
    if (data.byteLength < 4) return;
    const base = changetype<usize>(data);
    const n = min(<i32>load<u32>(base), (data.byteLength - 4) / 24);
    for (let k = 0; k < n; k++) {
      const at = base + 4 + <usize>k * 24;
      const hash = load<u64>(at);
      if (!index.has(hash)) continue;
      const l = out[index.get(hash)];
      l.pendingPromptBytes = saturatingAdd(l.pendingPromptBytes, max<i64>(0, load<i64>(at + 8)));
      l.inflight = saturatingAdd(l.inflight, max<i64>(0, load<i64>(at + 16)));
    }
    this.takePicks(id, data, 4 + n * 24);
  }

  /** Copies the picks instance `id` made since this VM last looked (its record's pick section at
   * `at`) into this VM's prefix memory. */
  private takePicks(id: u32, data: ArrayBuffer, at: i32): void {
    if (data.byteLength < at + 12) return; // no pick section
    const p = changetype<usize>(data) + <usize>at;
    const count = load<u64>(p);
    const kept = min<i32>(<i32>min<u32>(load<u32>(p + 8), <u32>PICKS_KEPT), (data.byteLength - at - 12) / 16);
    const seen = this.picksSeen.has(id) ? this.picksSeen.get(id) : 0;
    if (count < seen || count < <u64>kept) { this.picksSeen.set(id, count); return; } // not the sequence we followed
    for (let i = 0; i < kept; i++) {
      if (count - <u64>kept + <u64>i < seen) continue; // taken already
      VM_MEMORY.record(load<u64>(p + 12 + <usize>i * 16), load<u64>(p + 20 + <usize>i * 16));
    }
    this.picksSeen.set(id, count);
  }
}
