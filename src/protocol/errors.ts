/**
 * The error catalogue. Every failure nodeset reports carries one of these
 * codes, on the wire (ERROR frames), in thrown errors and in the HTTP bridge.
 * docs/errors.md documents each one; a test keeps the two in step.
 */
export const ERROR_CODES = {
  BAD_FRAME: 'A frame could not be decoded (bad MessagePack header or missing fields).',
  UNKNOWN_FRAME: 'The frame kind byte names no known frame.',
  TOO_LARGE: 'A frame or payload is larger than the configured limit.',
  BAD_URI: 'An event URI is malformed, or not allowed where it was used.',
  NOT_CONNECTED: 'A frame other than HELLO arrived before the handshake, or the node is not connected.',
  BAD_VERSION: 'The client speaks a protocol version the dispatcher does not support.',
  BAD_HANDSHAKE: 'The HELLO frame is malformed (missing or invalid name).',
  AUTH_FAILED: 'The credentials were missing or wrong.',
  PERMISSION_DENIED: 'The identity may not publish or subscribe to that URI.',
  NO_ROUTE: 'The URI names a host this dispatcher cannot reach.',
  NO_RESPONDERS: 'A request found no responder (a subscription that declared it answers) to take it.',
  TIMEOUT: 'An acknowledgement or reply did not arrive in time.',
  CONNECTION_LOST: 'The connection closed before the outcome of an operation was known.',
  BUFFER_FULL: 'A bounded buffer is full; the operation was refused rather than dropped.',
  SLOW_CONSUMER: 'A connection fell too far behind reading what was sent to it.',
  VALIDATION: 'A message does not fit its declared type.',
  HANDLER_ERROR: 'A subscriber handler threw while answering a request.',
  LIMIT_EXCEEDED: 'A configured limit (subscriptions, connections) was reached.',
  CLOSED: 'The node or dispatcher has been stopped.',
  BAD_OPTION: 'An option is missing, malformed or conflicts with another.',
  NOT_FOUND: 'No such HTTP resource (monitoring endpoint, HTTP bridge).',
  BAD_REQUEST: 'An HTTP request is malformed: bad percent-encoding, a broken request line or header.',
  METHOD_NOT_ALLOWED: 'An HTTP path exists but not for that method; the Allow header lists the ones it takes.',
  UNSUPPORTED_MEDIA_TYPE:
    'An HTTP request body has a Content-Type the bridge does not read (JSON and form fields only).',
  ABORTED:
    'The caller aborted the operation through its AbortSignal (start, request, acked publish, subscribe, drain).',
  INTERNAL: 'The dispatcher failed while handling a frame; the frame was dropped and the connection kept.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/** The one error class of nodeset: a stable `code` plus a readable message. */
export class NodesetError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NodesetError';
    this.code = code;
  }
}

/**
 * The dispatcher's warning that this connection is falling behind: the bytes
 * queued for it, and the limit at which it is cut off. Not fatal.
 */
export class SlowConsumerError extends NodesetError {
  constructor(
    message: string,
    readonly pendingBytes: number,
    readonly limitBytes: number,
    /** The dispatcher cut the connection off (what was queued for it is dropped); false for the warning. */
    readonly cut = false,
  ) {
    super('SLOW_CONSUMER', message);
    this.name = 'SlowConsumerError';
  }
}

/** A timeout waiting for an acknowledgement or a reply. */
export class TimeoutError extends NodesetError {
  constructor(message: string) {
    super('TIMEOUT', message);
    this.name = 'TimeoutError';
  }
}

/** A message that does not fit its declared type; `field` names the first bad field. */
export class ValidationError extends NodesetError {
  readonly field: string;

  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super('VALIDATION', message, options);
    this.name = 'ValidationError';
    this.field = field;
  }
}

/** An error as it travels: in ERROR frames, REPLY headers and between hosts. */
export interface WireError {
  code: string;
  message: string;
}

/**
 * The wire form of anything thrown or reported (`fallback` when it carries no
 * known code); undefined for a value that is not an error-like object.
 */
export function toWireError(err: unknown, fallback: ErrorCode = 'HANDLER_ERROR'): WireError | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as Record<string, unknown>;
  return {
    code: isErrorCode(e.code) ? e.code : fallback,
    message: typeof e.message === 'string' ? e.message : 'failed',
  };
}

/** The error a received `{ code, message }` stands for (an unknown code becomes `fallback`). */
export function fromWireError(
  h: { code?: unknown; message?: unknown },
  fallback: ErrorCode = 'INTERNAL',
  defaultMessage = 'error from the other side',
): NodesetError {
  const code = isErrorCode(h.code) ? h.code : fallback;
  return new NodesetError(code, typeof h.message === 'string' ? h.message : defaultMessage);
}
