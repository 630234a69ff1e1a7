import { QueuectlError } from '../errors.ts';

export interface Config {
  max_retries: number;
  backoff_base: number;
  backoff_max: number; // seconds
  output_limit: number; // bytes kept per stream per attempt
  lease_seconds: number;
}

interface KeyRule {
  default: number;
  integer: boolean;
  min: number;
  max: number;
  describe: string;
}

// Each key's range keeps every time computed from it valid (now + backoff_max or a lease stays
// a date before 9999 that the indexes can sort, and a lease fits Node's timers) and every
// amount storable: a value outside it is refused, and one already in a log is taken as the
// nearest bound (see configFromStored).
export const CONFIG_RULES: Readonly<Record<keyof Config, KeyRule>> = {
  max_retries: { default: 3, integer: true, min: 0, max: 2 ** 31 - 1, describe: 'retries after the first run before a job goes to the DLQ' },
  backoff_base: { default: 2, integer: false, min: 1, max: 1_000_000, describe: 'the n-th retry waits backoff_base^n seconds' },
  backoff_max: { default: 3600, integer: false, min: 0, max: 31_536_000, describe: 'the longest wait between retries, in seconds' },
  output_limit: { default: 1048576, integer: true, min: 0, max: 64 * 1024 * 1024, describe: 'bytes of stdout and of stderr kept per attempt' },
  lease_seconds: { default: 30, integer: true, min: 1, max: 86_400, describe: 'how long a claim lives without a heartbeat' },
};

export const CONFIG_KEYS = Object.keys(CONFIG_RULES) as (keyof Config)[];

export const DEFAULT_CONFIG: Readonly<Config> = Object.freeze(
  Object.fromEntries(CONFIG_KEYS.map((k) => [k, CONFIG_RULES[k].default])) as unknown as Config,
);

export const isConfigKey = (key: string): key is keyof Config => Object.hasOwn(CONFIG_RULES, key);

/** Validate a `config set` pair; the value may arrive as text from the command line. */
export const parseConfigValue = (key: string, raw: unknown): { key: keyof Config; value: number } => {
  if (!isConfigKey(key)) {
    throw new QueuectlError(
      'QUEUECTL_UNKNOWN_CONFIG_KEY',
      `unknown config key '${key}'; valid keys: ${CONFIG_KEYS.join(', ')}`,
    );
  }
  const rule = CONFIG_RULES[key];
  const text = typeof raw === 'number' ? String(raw) : typeof raw === 'string' ? raw.trim() : '';
  const value = /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
  const kind = rule.integer ? 'an integer' : 'a number';
  if (!Number.isFinite(value) || (rule.integer && !Number.isInteger(value)) || value < rule.min || value > rule.max) {
    throw new QueuectlError(
      'QUEUECTL_INVALID_CONFIG_VALUE',
      `invalid value '${String(raw)}' for ${key}: expected ${kind} >= ${rule.min} and <= ${rule.max} (${rule.describe})`,
    );
  }
  return { key, value };
};

/**
 * The configuration from stored ConfigSet values. A log written before the ranges existed may
 * hold a value outside them (lease_seconds 1e13): it is taken as the nearest bound, so no
 * computed time can overflow; a value that is not a number keeps the default.
 */
export const configFromStored = (stored: Iterable<[string, unknown]>): Config => {
  const config = { ...DEFAULT_CONFIG };
  for (const [key, value] of stored) {
    if (!isConfigKey(key) || typeof value !== 'number' || Number.isNaN(value)) continue;
    const rule = CONFIG_RULES[key];
    config[key] = Math.min(rule.max, Math.max(rule.min, rule.integer ? Math.floor(value) : value));
  }
  return config;
};
