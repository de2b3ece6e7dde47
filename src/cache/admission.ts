/**
 * TinyLFU-style frequency estimates for size-aware admission and eviction (see MemoryTier.makeRoom).
 * A count-min sketch estimates how often each key was asked for recently (counters halve every
 * `period` records, so old popularity fades). Plain LRU lets one-off and oversized objects flush the
 * hot set, which a held byte budget cannot afford (PRODUCT §3, "Efficiency at a held budget").
 */
export interface Admission {
  record(key: string): void;
  /** Recent requests for `key` (an estimate, 0–15). */
  frequency(key: string): number;
}

const ROWS = 4;
const MAX_COUNT = 15;

export class FrequencySketch {
  private readonly counters: Uint8Array;
  private readonly mask: number;
  private additions = 0;

  constructor(width: number, private readonly period = width * 10) {
    const size = 2 ** Math.ceil(Math.log2(Math.max(64, width)));
    this.counters = new Uint8Array(size * ROWS);
    this.mask = size - 1;
  }

  increment(key: string): void {
    const [h1, h2] = hashes(key);
    let added = false;
    for (let row = 0; row < ROWS; row++) {
      const i = this.index(row, h1, h2);
      if (this.counters[i] < MAX_COUNT) {
        this.counters[i]++;
        added = true;
      }
    }
    if (added && ++this.additions >= this.period) this.age();
  }

  estimate(key: string): number {
    const [h1, h2] = hashes(key);
    let min = MAX_COUNT;
    for (let row = 0; row < ROWS; row++) min = Math.min(min, this.counters[this.index(row, h1, h2)]);
    return min;
  }

  private index(row: number, h1: number, h2: number): number {
    return row * (this.mask + 1) + ((h1 + row * h2) >>> 0 & this.mask);
  }

  private age(): void {
    for (let i = 0; i < this.counters.length; i++) this.counters[i] >>= 1;
    this.additions = 0;
  }
}

/** Sketches narrower than this collide too often once there are many more keys than cached entries. */
const MIN_SKETCH_WIDTH = 65536;

export function createAdmission(expectedEntries: number): Admission {
  const sketch = new FrequencySketch(Math.max(MIN_SKETCH_WIDTH, expectedEntries * 8));
  return { record: (key) => sketch.increment(key), frequency: (key) => sketch.estimate(key) };
}

/**
 * Whether a newcomer earns its place: its requests per byte must beat what the entries it displaces
 * earn per byte they hold.
 */
export function worthAdmitting(frequency: number, size: number, victimHits: number, victimBytes: number): boolean {
  return victimBytes === 0 || frequency * victimBytes > victimHits * size;
}

/** Two independent 32-bit FNV-1a variants for double hashing. */
function hashes(key: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ key.length;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
  }
  return [a >>> 0, (b ^ (b >>> 15)) | 1];
}
