/**
 * AbortSignal support: the ABORTED error, and waiting on a promise until a
 * signal aborts it. Only used when a caller passes a signal: no cost otherwise.
 */
import { NodesetError } from '../protocol/errors.js';

/** The error an aborted operation rejects with: code ABORTED, the signal's reason as its cause. */
export function abortedError(signal: AbortSignal, what: string): NodesetError {
  return new NodesetError('ABORTED', `${what} aborted`, { cause: signal.reason });
}

/** Throws ABORTED when the signal has already aborted. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted === true) throw abortedError(signal, what);
}

/**
 * Settles as `promise` does, or rejects with ABORTED as soon as `signal`
 * aborts (then `onAbort` runs, and a late outcome of `promise` is ignored).
 */
export function abortable<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  what: string,
  onAbort?: () => void,
): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) {
    promise.catch(() => {});
    onAbort?.();
    return Promise.reject(abortedError(signal, what));
  }
  return new Promise<T>((resolve, reject) => {
    const aborted = (): void => {
      promise.catch(() => {});
      onAbort?.();
      reject(abortedError(signal, what));
    };
    signal.addEventListener('abort', aborted, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', aborted);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', aborted);
        reject(err);
      },
    );
  });
}
