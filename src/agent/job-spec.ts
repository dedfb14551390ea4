import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { AGENT_JOB_TYPES, PRIORITIES } from '../client/agent-protocol.js';
import type { AgentJobSpec } from '../client/agent-protocol.js';
import { newJobId } from '../client/journal.js';
import { checkHeaders, credentialHeader } from '../client/options.js';
import type { AgentJobRecord } from './job-record.js';
import type { Secrets } from './secrets.js';

/** Longest a duration may be (a Node timer's limit would be 24.8 days; 1 year is plenty). */
const MAX_MS = 365 * 24 * 3_600_000;

const httpUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}, 'must be an http:// or https:// URL');

const path = z.string().min(1).refine((p) => isAbsolute(p), 'must be an absolute path');

/** The schema of an `enqueue` request. */
export const jobSpecSchema = z
  .object({
    type: z.enum(AGENT_JOB_TYPES),
    files: z.array(z.object({ url: httpUrl, file: path }).strict()).max(1000),
    name: z.string().max(256).optional(),
    priority: z.enum(PRIORITIES).optional(),
    minRetryDelayMs: z.number().int().min(0).max(MAX_MS).optional(),
    noProgressTimeoutMs: z.number().int().min(0).max(MAX_MS).optional(),
    headers: z.record(z.string(), z.string()).optional(),
    user: z.string().min(1).optional(),
    auth: z.enum(['negotiate', 'ntlm']).optional(),
    ca: z.string().optional(),
    insecure: z.boolean().optional(),
    cert: z.string().optional(),
    keyFile: path.optional(),
    notifyCommand: z.array(z.string()).min(1).optional(),
    notifyShell: z.boolean().optional(),
    notifyUrl: httpUrl.optional(),
    autoComplete: z.boolean().optional(),
    maxRateBps: z.number().int().min(1024).optional(),
    yield: z.boolean().optional(),
    replyFile: path.optional(),
    suspended: z.boolean().optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    const problem = (message: string): void => ctx.addIssue({ code: 'custom', message });
    if (s.files.length === 0 && !s.suspended) problem('files: a job needs a file (or is created suspended, and gets its files later)');
    if (s.type !== 'download' && s.files.length > 1) problem(`an ${s.type} job has exactly one file`);
    if (s.type !== 'upload-reply' && s.replyFile !== undefined) problem('replyFile is for upload-reply jobs');
    if (s.type === 'download' && s.yield === true) problem("yield is for uploads: the delay of each fragment's Ack is its signal");
    if (s.notifyShell && s.notifyCommand?.length !== 1) problem('notifyShell takes the command as one string');
    if ((s.cert === undefined) !== (s.keyFile === undefined)) problem('cert and keyFile go together');
    if (s.auth === 'negotiate' && s.user !== undefined) problem('negotiate signs in with the Kerberos ticket: no user');
    if (s.auth === 'ntlm' && s.user === undefined) problem('ntlm needs user ("DOMAIN\\user:password")');
    try {
      checkHeaders(s.headers);
    } catch (err) {
      problem((err as Error).message);
    }
    const credential = credentialHeader(s.headers);
    if (credential !== undefined) problem(`header ${credential} carries credentials, which the agent would keep: use user`);
    for (const f of s.files) {
      const u = new URL(f.url);
      if (u.username !== '' || u.password !== '') problem(`${u.origin}: give credentials as user, not in the URL`);
    }
    if (s.type === 'download' && new Set(s.files.map((f) => resolve(f.file))).size !== s.files.length) problem('two files of the job have the same local path');
  });

/**
 * Why a spec is not a job, in one line; `undefined` when it is.
 *
 * @example
 * ```ts
 * specProblem({ type: 'upload', files: [] }); // 'files: Too small: expected array to have >=1 items'
 * ```
 */
export function specProblem(spec: unknown): string | undefined {
  return problemOf(jobSpecSchema.safeParse(spec));
}

/** zod's issues in one line, each with the path of what it is about. */
function problemOf(r: { success: true } | { success: false; error: z.ZodError }): string | undefined {
  if (r.success) return undefined;
  return r.error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
}

/** The schema of `update` changes. */
export const changesSchema = z
  .object({
    addFiles: z.array(z.object({ url: httpUrl, file: path }).strict()).max(1000).optional(),
    name: z.string().max(256).optional(),
    minRetryDelayMs: z.number().int().min(0).max(MAX_MS).optional(),
    noProgressTimeoutMs: z.number().int().min(0).max(MAX_MS).optional(),
    notifyCommand: z.array(z.string()).optional(),
    notifyShell: z.boolean().optional(),
    notifyUrl: z.union([httpUrl, z.literal('')]).optional(),
    user: z.string().min(1).optional(),
    auth: z.enum(['negotiate', 'ntlm']).optional(),
    autoComplete: z.boolean().optional(),
    replyFile: path.optional(),
  })
  .strict();

/**
 * Why changes cannot be made, in one line; `undefined` when they can (the job's state is the
 * agent's to check).
 *
 * @example
 * ```ts
 * changesProblem({ name: 7 }); // 'name: Invalid input: expected string, received number'
 * ```
 */
export function changesProblem(changes: unknown): string | undefined {
  return problemOf(changesSchema.safeParse(changes));
}

/** Defaults of a job's settings. */
export interface JobDefaults {
  readonly minRetryDelayMs: number;
  readonly noProgressTimeoutMs: number;
}

/**
 * The record of a new job from a valid spec (see {@link specProblem}): a password is sealed, paths
 * resolved, defaults applied. `yield` defaults to on for uploads that are not foreground.
 *
 * @example
 * ```ts
 * const record = newRecord(spec, secrets, { minRetryDelayMs: 30_000, noProgressTimeoutMs: 1_209_600_000 });
 * ```
 */
export function newRecord(spec: AgentJobSpec, secrets: Secrets, d: JobDefaults): AgentJobRecord {
  const now = Date.now();
  const priority = spec.priority ?? 'normal';
  let user: string | undefined;
  let sealedPassword: string | undefined;
  if (spec.user !== undefined) {
    const i = spec.user.indexOf(':');
    user = i < 0 ? spec.user : spec.user.slice(0, i);
    if (i >= 0) sealedPassword = secrets.seal(spec.user.slice(i + 1));
  }
  return {
    version: 1,
    id: newJobId(),
    name: spec.name,
    type: spec.type,
    state: spec.suspended ? 'SUSPENDED' : 'QUEUED',
    priority,
    files: spec.files.map((f) => ({ url: f.url, file: resolve(f.file), bytesDone: 0, done: false })),
    settings: {
      minRetryDelayMs: spec.minRetryDelayMs ?? d.minRetryDelayMs,
      noProgressTimeoutMs: spec.noProgressTimeoutMs ?? d.noProgressTimeoutMs,
      headers: spec.headers ? { ...spec.headers } : undefined,
      user,
      sealedPassword,
      auth: spec.auth,
      ca: spec.ca,
      insecure: spec.insecure,
      cert: spec.cert,
      keyFile: spec.keyFile,
      notifyCommand: spec.notifyCommand ? [...spec.notifyCommand] : undefined,
      notifyShell: spec.notifyShell,
      notifyUrl: spec.notifyUrl,
      autoComplete: spec.autoComplete ?? false,
      maxRateBps: spec.maxRateBps,
      yield: spec.yield ?? (priority !== 'foreground' && spec.type !== 'download'),
      replyFile: spec.type === 'upload-reply' && (spec.replyFile !== undefined || spec.files[0]) ? resolve(spec.replyFile ?? `${spec.files[0]!.file}.reply`) : undefined,
    },
    createdAt: now,
    modifiedAt: now,
    errorCount: 0,
    queuedAt: now,
  };
}
