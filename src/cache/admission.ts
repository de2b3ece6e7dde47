/**
 * TinyLFU-style admission with size awareness. A count-min sketch estimates how often each key was
 * asked for recently (counters halve every `period` records, so old popularity fades). A new entry
 * is admitted only when its requests per byte beat those of the entries it would push out: plain
 * LRU lets one-off and oversized objects flush the hot set, which is what a held byte budget cannot
 * afford (PRODUCT §3, "Efficiency at a held budget").
 */
export interface Admission {
  record(key: string): void;
  /** `victims` yields, least valuable first, the keys that would be evicted to make room. */
  admit(key: string, size: number, victims: Iterable<string>, sizeOf?: (key: string) => number): boolean;
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

export function createAdmission(expectedEntries: number): Admission {
  const sketch = new FrequencySketch(expectedEntries);
  return {
    record: (key) => sketch.increment(key),
    admit(key, size, victims, sizeOf) {
      const candidate = sketch.estimate(key);
      let victimHits = 0;
      let victimBytes = 0;
      for (const victim of victims) {
        victimHits += sketch.estimate(victim);
        victimBytes += sizeOf ? sizeOf(victim) : size;
      }
      if (victimBytes === 0) return true;
      // Requests per byte: candidate / size against what the victims earn per byte they hold.
      return candidate * victimBytes > victimHits * size;
    },
  };
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
