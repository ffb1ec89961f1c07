// vLLM's KV block pool with automatic prefix caching, in miniature. Every block holds `blockSize`
// tokens. A full prompt block is registered under a chained hash (its parent's hash and its own
// tokens), so two requests with the same leading blocks share them. Blocks nobody references sit in
// a free queue in LRU order and can still be hit until they are reallocated (evicted).

export class BlockPool {
  private readonly refCount: Int32Array;
  private readonly hashOf: Array<string | undefined>;
  private readonly byHash = new Map<string, number>();
  /** Free blocks, least recently freed first (Map keeps insertion order). */
  private readonly freeQueue = new Map<number, true>();

  constructor(readonly capacity: number) {
    this.refCount = new Int32Array(capacity);
    this.hashOf = new Array<string | undefined>(capacity);
    for (let b = 0; b < capacity; b++) this.freeQueue.set(b, true);
  }

  get freeBlocks(): number { return this.freeQueue.size; }
  get usedBlocks(): number { return this.capacity - this.freeQueue.size; }

  /** Block ids of the longest cached prefix of `hashes`. */
  lookupPrefix(hashes: readonly string[]): number[] {
    const hit: number[] = [];
    for (const h of hashes) {
      const block = this.byHash.get(h);
      if (block === undefined) break;
      hit.push(block);
    }
    return hit;
  }

  /** Takes a reference on cached blocks (a prefix hit). */
  acquire(blocks: readonly number[]): void {
    for (const b of blocks) {
      if (this.refCount[b] === 0) this.freeQueue.delete(b);
      this.refCount[b]!++;
    }
  }

  /** Allocates `n` fresh blocks, evicting the least recently freed; null if too few are free. */
  allocate(n: number): number[] | null {
    if (n > this.freeQueue.size) return null;
    const out: number[] = [];
    for (const b of this.freeQueue.keys()) {
      if (out.length === n) break;
      out.push(b);
    }
    for (const b of out) {
      this.freeQueue.delete(b);
      this.evict(b);
      this.refCount[b] = 1;
    }
    return out;
  }

  /** Registers a computed full block under its hash, unless an identical block is cached. */
  register(block: number, hash: string): void {
    if (this.hashOf[block] !== undefined || this.byHash.has(hash)) return;
    this.hashOf[block] = hash;
    this.byHash.set(hash, block);
  }

  /** Drops references; blocks reaching zero join the free queue tail-first, so a request's last
   * blocks are evicted before its first ones (leading blocks are the most shareable). */
  release(blocks: readonly number[]): void {
    for (let i = blocks.length - 1; i >= 0; i--) {
      const b = blocks[i]!;
      if (this.refCount[b]! <= 0) throw new Error(`block ${b} released twice`);
      if (--this.refCount[b]! === 0) this.freeQueue.set(b, true);
    }
  }

  private evict(block: number): void {
    const h = this.hashOf[block];
    if (h === undefined) return;
    this.byHash.delete(h);
    this.hashOf[block] = undefined;
  }
}

/** Chained block hashes of the full blocks of `tokens` (the trailing partial block has none). */
export function blockHashes(tokens: readonly string[], blockSize: number, salt = ""): string[] {
  const hashes: string[] = [];
  let parent = salt;
  for (let start = 0; start + blockSize <= tokens.length; start += blockSize) {
    parent = hashBlock(parent, tokens, start, blockSize);
    hashes.push(parent);
  }
  return hashes;
}

/** Two 32-bit FNV-1a lanes over the parent hash and the block's tokens; hex, 64 bits. */
function hashBlock(parent: string, tokens: readonly string[], start: number, size: number): string {
  let a = 0x811c9dc5, b = 0x01000193 ^ 0x5bd1e995;
  const mix = (s: string): void => {
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 15);
    }
    a = Math.imul(a ^ 0x1f, 0x01000193);
    b = Math.imul(b ^ 0x1f, 0x5bd1e995);
  };
  mix(parent);
  for (let i = start; i < start + size; i++) mix(tokens[i]!);
  return (a >>> 0).toString(16).padStart(8, "0") + (b >>> 0).toString(16).padStart(8, "0");
}
