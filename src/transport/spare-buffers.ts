/**
 * Outbound buffers already written, shared by all connections: a busy
 * connection takes one instead of allocating (and faulting in) fresh memory
 * for every flush. Each new buffer is memory outside the JavaScript heap, and
 * every 64 MB of it allocated costs the process a full garbage collection, so
 * a dispatcher that queues for a slow subscriber would otherwise collect
 * several times a second.
 *
 * Only buffers whose size is a power of two are kept (FrameSocket allocates
 * its large ones so), one list per size, so that a written buffer serves the
 * next flush of about its size. Bounded in bytes (MAX_SPARE_BYTES). What is
 * not taken for a while goes: every TRIM_INTERVAL_MS the buffers that stayed
 * unused through the whole interval are released, so an idle process holds
 * none.
 */

/** The most bytes held as spares. */
export const MAX_SPARE_BYTES = 32 * 1024 * 1024;
/** Smaller buffers come from Node's own pool and are not kept. */
export const MIN_SPARE_BYTES = 16 * 1024;
const MIN_SHIFT = 14;
const MAX_SHIFT = 30;
const TRIM_INTERVAL_MS = 2000;

/** Spares by size: lists[k - MIN_SHIFT] holds buffers of 2^k bytes, the oldest first. */
const lists: Buffer[][] = Array.from({ length: MAX_SHIFT - MIN_SHIFT + 1 }, () => []);
/** Per list, the fewest it held since the last trim: that many (its oldest) were never needed. */
const lowWater: number[] = lists.map(() => 0);
let spareBytes = 0;
/** Spares handed out again since the process started (a buffer reused instead of allocated). */
let taken = 0;
let trimTimer: NodeJS.Timeout | null = null;

/** The size a large buffer is allocated with: the next power of two. */
export function spareSize(size: number): number {
  return size <= MIN_SPARE_BYTES ? size : 2 ** Math.ceil(Math.log2(size));
}

function trim(): void {
  trimTimer = null;
  let left = 0;
  for (let i = 0; i < lists.length; i++) {
    const list = lists[i] as Buffer[];
    const unused = lowWater[i] as number;
    if (unused > 0) {
      spareBytes -= unused * 2 ** (i + MIN_SHIFT);
      list.splice(0, unused);
    }
    lowWater[i] = list.length;
    left += list.length;
  }
  if (left > 0) schedule();
}

function schedule(): void {
  trimTimer = setTimeout(trim, TRIM_INTERVAL_MS);
  trimTimer.unref();
}

/** True for a size that keepSpare keeps. */
export function isSpareSize(size: number): boolean {
  return size >= MIN_SPARE_BYTES && (size & (size - 1)) === 0 && size <= 2 ** MAX_SHIFT;
}

/** Gives back a buffer nothing refers to any more (its bytes were written); one of another size is left to the GC. */
export function keepSpare(buf: Buffer): void {
  const size = buf.length;
  if (!isSpareSize(size) || spareBytes + size > MAX_SPARE_BYTES) return;
  (lists[Math.log2(size) - MIN_SHIFT] as Buffer[]).push(buf);
  spareBytes += size;
  if (trimTimer === null) schedule();
}

/** A spare buffer of at least `size` bytes (at most four times as many), or undefined. */
export function takeSpare(size: number): Buffer | undefined {
  if (size <= MIN_SPARE_BYTES) return undefined;
  const first = Math.ceil(Math.log2(size)) - MIN_SHIFT;
  for (let i = first; i <= first + 1 && i < lists.length; i++) {
    const list = lists[i] as Buffer[];
    const buf = list.pop();
    if (buf !== undefined) {
      spareBytes -= buf.length;
      taken++;
      if (list.length < (lowWater[i] as number)) lowWater[i] = list.length;
      return buf;
    }
  }
  return undefined;
}

/** How many spares were handed out again so far. */
export function sparesTaken(): number {
  return taken;
}

/** Bytes held as spares now. */
export function spareBytesHeld(): number {
  return spareBytes;
}
