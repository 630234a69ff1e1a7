// What each call on the host's socket may carry: one schema per method of Host.api. Anything
// on the socket (a job's bug included) reaches the host, so the host checks the shape of every
// call here before a handler sees it; the rules of the queue itself (a job's fields, config
// values, states) are the domain's, applied the same way to local and remote callers. Only
// the host's side loads this module (server.ts).
import * as v from 'valibot';
import { checkJobSpec } from '../domain/job-spec.ts';
import { QueuectlError } from '../errors.ts';
import type { Method, Params } from './host.ts';

/** The longest a long poll (claim, events, wait) may wait; clients ask for 10 s at most and ask again. */
const MAX_WAIT_MS = 60_000;
/** The most events one `events` call answers (the CLI asks for 1,000 at a time). */
const MAX_EVENTS_PER_CALL = 10_000;

// What users type (ids, keys, states) is any string here, as it is for a local caller: the domain
// answers "no such job". What only workers send is bounded.
const text = v.string();
const workerText = v.pipe(v.string(), v.maxLength(4096));
const workerId = v.pipe(v.string(), v.minLength(1), v.maxLength(256));
const count = (min: number) => v.pipe(v.number(), v.safeInteger(), v.minValue(min));
const waitMs = v.pipe(v.number(), v.minValue(0), v.maxValue(MAX_WAIT_MS));
// no params: what Params<M> calls Record<string, never>
const nothing = v.strictObject({}) as v.GenericSchema<unknown, Record<string, never>>;
const offsets = v.strictObject({ stdout: count(0), stderr: count(0) });
const output = v.strictObject({ bytes: count(0), kept: count(0), truncated: v.boolean(), error: v.optional(workerText) });

const SCHEMAS = {
  // checkJobSpec: the CLI's rules for a job, so a batch is refused here before any job is read
  enqueue: v.strictObject({
    jobs: v.pipe(v.array(v.unknown()), v.minLength(1), v.transform((jobs) => jobs.map((j, i) => checkJobSpec(j, `job ${i + 1}: `)))),
    resent: v.optional(v.boolean()),
  }),
  claim: v.strictObject({ workerId, waitMs }),
  report: v.strictObject({
    jobId: workerText,
    workerId,
    attempt: count(1),
    result: v.strictObject({
      durationMs: v.pipe(v.number(), v.finite(), v.minValue(0)),
      exitCode: v.nullable(v.pipe(v.number(), v.safeInteger())),
      signal: v.nullable(workerText),
      timedOut: v.boolean(),
      error: v.nullable(v.string()),
      output: v.nullable(v.strictObject({ stdout: output, stderr: output })),
    }),
    claim: v.optional(v.boolean()),
  }),
  release: v.strictObject({
    jobId: workerText,
    workerId,
    attempt: count(1),
    reason: workerText,
    durationMs: v.pipe(v.number(), v.finite(), v.minValue(0)),
    output: v.nullable(v.strictObject({ stdout: output, stderr: output })),
  }),
  heartbeat: v.strictObject({ workerId, running: v.array(v.strictObject({ jobId: workerText, attempt: count(1) })) }),
  workerStart: v.strictObject({ workerId, pid: count(1), slots: count(1) }),
  workerStop: v.strictObject({ workerId, reason: workerText }),
  cancel: v.strictObject({ id: text }),
  retry: v.strictObject({ ids: v.array(text), all: v.boolean() }),
  configSet: v.strictObject({ key: text, value: text }),
  config: nothing,
  status: nothing,
  list: v.strictObject({ state: v.optional(text), limit: v.optional(count(1)) }),
  show: v.strictObject({ id: text }),
  history: v.strictObject({ id: text }),
  dlq: nothing,
  events: v.strictObject({ from: count(0), limit: v.pipe(count(1), v.maxValue(MAX_EVENTS_PER_CALL)), waitMs: v.optional(waitMs) }),
  wait: v.strictObject({ ids: v.array(text), waitMs }),
  idle: nothing,
  workersHere: nothing,
  keepOutput: v.strictObject({ jobId: workerText, attempt: count(1), stdout: v.string(), stderr: v.string(), from: v.optional(offsets) }),
  output: v.strictObject({ jobId: text, attempt: count(1), from: v.optional(offsets) }),
  rebuild: nothing,
  verify: nothing,
} satisfies { [M in Method]: v.GenericSchema<unknown, Params<M>> };

/**
 * At compile time: each schema gives exactly its method's params, optional fields included, so
 * a field added to a method of Host.api (or to AttemptResult) fails the typecheck here rather
 * than being refused at run time by a strict schema. (`satisfies` above names the field; it
 * cannot see a missing optional one.)
 */
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Drifted = { [M in Method]: Same<v.InferOutput<(typeof SCHEMAS)[M]>, Params<M>> extends true ? never : M }[Method];
type Assert<T extends true> = T;
type SchemasMatchTheApi = Assert<[Drifted] extends [never] ? true : false>;

/** The params of a call, checked (a copy holding only the known fields), or a QUEUECTL_INVALID_INPUT refusal. */
export const checkParams = <M extends Method>(method: M, params: unknown): Params<M> => {
  const parsed = v.safeParse(SCHEMAS[method] as v.GenericSchema<unknown, Params<M>>, params ?? {});
  if (parsed.success) return parsed.output;
  const issue = parsed.issues[0];
  const path = v.getDotPath(issue);
  throw new QueuectlError('QUEUECTL_INVALID_INPUT', `invalid parameters for '${method}'${path ? ` at ${path}` : ''}: ${issue.message}`);
};

