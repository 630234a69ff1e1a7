// Every refusal queuectl makes carries a stable code, so tests and scripts match on codes,
// not on wording, and an exit status: 2 for bad usage or input, 1 for an operation that failed.
export type ErrorCode =
  | 'QUEUECTL_INVALID_INPUT'
  | 'QUEUECTL_UNKNOWN_COMMAND'
  | 'QUEUECTL_DUPLICATE_ID'
  | 'QUEUECTL_UNKNOWN_JOB'
  | 'QUEUECTL_WRONG_STATE'
  | 'QUEUECTL_NOT_RUNNABLE'
  | 'QUEUECTL_STALE_ATTEMPT'
  | 'QUEUECTL_UNKNOWN_CONFIG_KEY'
  | 'QUEUECTL_INVALID_CONFIG_VALUE'
  | 'QUEUECTL_NOT_A_DATA_DIR'
  | 'QUEUECTL_UNSAFE_PERMISSIONS'
  | 'QUEUECTL_PROTOCOL_MISMATCH'
  | 'QUEUECTL_HOST_LOST'
  | 'QUEUECTL_BUSY'
  | 'QUEUECTL_TIMEOUT'
  | 'QUEUECTL_DATABASE_UNAVAILABLE'
  | 'QUEUECTL_FAILED';

const USAGE_CODES = new Set<ErrorCode>([
  'QUEUECTL_INVALID_INPUT',
  'QUEUECTL_NOT_A_DATA_DIR',
  'QUEUECTL_UNKNOWN_COMMAND',
  'QUEUECTL_UNKNOWN_CONFIG_KEY',
  'QUEUECTL_INVALID_CONFIG_VALUE',
]);

export class QueuectlError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'QueuectlError';
    this.code = code;
  }
  get exitCode(): 1 | 2 {
    return USAGE_CODES.has(this.code) ? 2 : 1;
  }
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export const fail = (code: ErrorCode, message: string): never => {
  throw new QueuectlError(code, message);
};

export const isQueuectlError = (e: unknown): e is QueuectlError =>
  e instanceof QueuectlError ||
  (typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string' &&
    (e as { code: string }).code.startsWith('QUEUECTL_'));
