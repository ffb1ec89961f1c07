// vLLM V1's KV block pool with automatic prefix caching, in miniature (vllm/v1/core/block_pool.py,
// vllm/v1/core/kv_cache_utils.py). Every block holds `blockSize` tokens. Block 0 is the null block
// vLLM reserves as a placeholder, so `capacity - 1` blocks are usable.
//
// A full block is cached under a chained hash (its parent's hash and its own tokens), so requests
// with the same leading blocks share them. Blocks nobody references sit in a free queue — a doubly
// linked list, as vLLM's FreeKVCacheBlockQueue — in the order they were freed: allocation takes from
// the head (evicting the block's hash if it has one), freeing appends to the tail, and a prefix hit
// on a free block takes it out of the middle ("touch"). Like vLLM, identical blocks are not
// de-duplicated: a hash may be held by several blocks, and a lookup returns the first.

const NONE = -1;

export class BlockPool {
  /** Blocks in the pool, the null block included (vLLM's num_gpu_blocks). */
  readonly capacity: number;
  private readonly refCount: Int32Array;
  /** Hash a block is cached under; NaN when it holds none. */
  private readonly hashOf: Float64Array;
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  /** Further blocks cached under the same hash as this one (a singly linked chain). */
  private readonly sameHash: Int32Array;
  private readonly byHash = new Map<number, number>();
  private head = NONE;
  private tail = NONE;
  private free = 0;

  constructor(capacity: number) {
    if (!(capacity >= 1)) throw new Error("a block pool needs at least the null block");
    this.capacity = capacity;
    this.refCount = new Int32Array(capacity);
    this.hashOf = new Float64Array(capacity).fill(NaN);
    this.prev = new Int32Array(capacity).fill(NONE);
    this.next = new Int32Array(capacity).fill(NONE);
    this.sameHash = new Int32Array(capacity).fill(NONE);
    for (let b = 1; b < capacity; b++) this.append(b);
  }

  /** Blocks a request can ever use (all but the null block). */
  get usableBlocks(): number { return this.capacity - 1; }
  get freeBlocks(): number { return this.free; }
  /** Blocks referenced by requests. */
  get usedBlocks(): number { return this.capacity - 1 - this.free; }
  /** Blocks that hold a cached hash (in use or evictable). */
  get cachedBlocks(): number {
    let n = 0;
    for (let b = 1; b < this.capacity; b++) if (!Number.isNaN(this.hashOf[b]!)) n++;
    return n;
  }

  /** Block ids of the longest cached prefix of `hashes`, at most `maxBlocks` of them. */
  lookupPrefix(hashes: readonly number[], maxBlocks = hashes.length): number[] {
    const hit: number[] = [];
    const n = Math.min(maxBlocks, hashes.length);
    for (let i = 0; i < n; i++) {
      const block = this.byHash.get(hashes[i]!);
      if (block === undefined) break;
      hit.push(block);
    }
    return hit;
  }

  /** How many of `blocks` sit in the free queue (a hit on them uses up a free block). */
  countEvictable(blocks: readonly number[]): number {
    let n = 0;
    for (const b of blocks) if (this.refCount[b] === 0) n++;
    return n;
  }

  /** Takes a reference on cached blocks (a prefix hit), pulling free ones out of the queue. */
  touch(blocks: readonly number[]): void {
    for (const b of blocks) {
      if (this.refCount[b] === 0) this.unlink(b);
      this.refCount[b]!++;
    }
  }

  /** Pops `n` blocks from the head of the free queue, evicting their cached hashes. */
  allocate(n: number): number[] {
    if (n > this.free) throw new Error(`cannot allocate ${n} blocks, ${this.free} free`);
    const out = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      const b = this.head;
      this.unlink(b);
      this.evict(b);
      this.refCount[b] = 1;
      out[i] = b;
    }
    return out;
  }

  /** Caches a full, computed block under `hash`. */
  cache(block: number, hash: number): void {
    if (!Number.isNaN(this.hashOf[block]!)) return;
    this.hashOf[block] = hash;
    const first = this.byHash.get(hash);
    if (first === undefined) {
      this.byHash.set(hash, block);
    } else {
      this.sameHash[block] = this.sameHash[first]!;
      this.sameHash[first] = block;
    }
  }

  /** Drops one reference on each block, in the given order; blocks reaching zero join the tail of
   * the free queue, so the first ones given are evicted first. vLLM frees a request's blocks
   * last-first, so its leading (most shareable) blocks survive longest. */
  release(blocks: readonly number[]): void {
    for (const b of blocks) {
      if (this.refCount[b]! <= 0) throw new Error(`block ${b} released twice`);
      if (--this.refCount[b]! === 0) this.append(b);
    }
  }

  /** The free queue from head (next to be evicted) to tail, for tests. */
  freeQueue(): number[] {
    const out: number[] = [];
    for (let b = this.head; b !== NONE; b = this.next[b]!) out.push(b);
    return out;
  }

  /** The hash `block` is cached under, if any. */
  hashOfBlock(block: number): number | undefined {
    const h = this.hashOf[block]!;
    return Number.isNaN(h) ? undefined : h;
  }

  private append(b: number): void {
    this.prev[b] = this.tail;
    this.next[b] = NONE;
    if (this.tail === NONE) this.head = b;
    else this.next[this.tail] = b;
    this.tail = b;
    this.free++;
  }

  private unlink(b: number): void {
    const p = this.prev[b]!, n = this.next[b]!;
    if (p === NONE) this.head = n;
    else this.next[p] = n;
    if (n === NONE) this.tail = p;
    else this.prev[n] = p;
    this.prev[b] = NONE;
    this.next[b] = NONE;
    this.free--;
  }

  private evict(block: number): void {
    const h = this.hashOf[block]!;
    if (Number.isNaN(h)) return;
    this.hashOf[block] = NaN;
    const first = this.byHash.get(h)!;
    if (first === block) {
      const rest = this.sameHash[block]!;
      if (rest === NONE) this.byHash.delete(h);
      else this.byHash.set(h, rest);
    } else {
      let p = first;
      while (this.sameHash[p] !== block) p = this.sameHash[p]!;
      this.sameHash[p] = this.sameHash[block]!;
    }
    this.sameHash[block] = NONE;
  }
}

// Hashes are numbers (53 bits from two 32-bit lanes), not strings: no allocation per block.
const TWO_21 = 2097152;

/** Mixes a 32-bit value into a 53-bit chained hash. */
export function chainHash(parent: number, value: number): number {
  let a = Math.imul((parent / TWO_21) ^ 0x9e3779b9, 0x85ebca6b) ^ value;
  let b = Math.imul((parent % TWO_21) ^ 0x27d4eb2f, 0xc2b2ae35) ^ Math.imul(value, 0x01000193);
  a = Math.imul(a ^ (a >>> 16), 0x7feb352d);
  b = Math.imul(b ^ (b >>> 15), 0x846ca68b);
  a ^= a >>> 15;
  b ^= b >>> 16;
  return (a >>> 0) * TWO_21 + (b >>> 11);
}

/** FNV-1a of a token's text. */
export function tokenHash(token: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < token.length; i++) h = Math.imul(h ^ token.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Chained hashes of the full blocks of `tokens` (a trailing partial block has none); `salt` stands
 * for vLLM's extra keys (the LoRA adapter). */
export function blockHashes(tokens: readonly string[], blockSize: number, salt = ""): number[] {
  const hashes: number[] = [];
  let parent = salt === "" ? 0 : chainHash(1, tokenHash(salt));
  for (let start = 0; start + blockSize <= tokens.length; start += blockSize) {
    let h = chainHash(parent, blockSize);
    for (let i = start; i < start + blockSize; i++) h = chainHash(h, tokenHash(tokens[i]!));
    parent = h;
    hashes.push(h);
  }
  return hashes;
}
