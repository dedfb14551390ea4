import { z } from 'zod';
import { BitsError } from '../../protocol/errors.js';
import { HResult } from '../../protocol/hresult.js';
import type { PacketContext } from '../handlers/context.js';
import type { Location } from '../vdir-table.js';
import type { SessionCreateRequest } from './types.js';
import { deliver } from './webhook.js';
import type { WebhookTarget } from './webhook.js';

/** Headers a hook never sees: the client's credentials. */
const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);

/** A failure HRESULT, as a number or as `0x8…` text. */
const hresultSchema = z
  .union([z.number().int(), z.string().regex(/^0x[0-9a-f]{8}$/i, 'expected 0x followed by 8 hex digits').transform(Number)])
  .refine((n) => n >= 0x80000000 && n <= 0xffffffff, 'expected a failure HRESULT (0x80000000 to 0xFFFFFFFF)');

const decisionSchema = z.discriminatedUnion('action', [
  z.object({ action: z.literal('accept') }),
  z.object({
    action: z.literal('reject'),
    status: z.number().int().min(400).max(599).optional(),
    hresult: hresultSchema.optional(),
    message: z.string().max(1000).optional(),
  }),
  z.object({ action: z.literal('rename'), name: z.string().min(1).max(4096) }),
]);

/** A validated decision, its HRESULT as a number. */
type Decision = z.output<typeof decisionSchema>;

/** What a hook learns about the Create-Session of `ctx`. */
function createRequest(ctx: PacketContext): SessionCreateRequest {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(ctx.req.headers)) if (!CREDENTIAL_HEADERS.has(name)) headers[name] = value;
  return {
    vdir: ctx.loc.vdir.path,
    urlPath: ctx.loc.urlPath,
    name: ctx.loc.segments.join('/'),
    principal: ctx.principal,
    clientAddress: ctx.req.remoteAddress,
    headers,
  };
}

/** `answer` as a decision, or why it is not one. */
function parseDecision(answer: unknown): Decision | string {
  const parsed = decisionSchema.safeParse(answer ?? { action: 'accept' });
  return parsed.success ? parsed.data : parsed.error.issues.map((i) => `${i.path.join('.') || 'answer'}: ${i.message}`).join('; ');
}

/** The createWebhook's decision; a receiver that fails or answers nonsense refuses the session (5xx). */
async function askWebhook(ctx: PacketContext, target: WebhookTarget, request: SessionCreateRequest): Promise<Decision> {
  const log = { vdir: request.vdir, url: request.urlPath, webhook: target.url.origin };
  let body: string;
  try {
    const answer = await deliver(target, 'session.create', request, (err, attempt, delayMs) =>
      ctx.logger.warn({ ...log, attempt, delayMs, reason: err.message }, 'create webhook failed; retrying'),
    );
    body = answer.body;
  } catch (err) {
    throw new BitsError('BITS_APPLICATION_UNREACHABLE', `create webhook: ${(err as Error).message}`, { cause: err });
  }
  let json: unknown;
  try {
    json = body.trim() === '' ? undefined : JSON.parse(body);
  } catch {
    throw new BitsError('BITS_APPLICATION_ERROR', 'create webhook: the answer is not JSON');
  }
  const decision = parseDecision(json);
  if (typeof decision === 'string') throw new BitsError('BITS_APPLICATION_ERROR', `create webhook: ${decision}`);
  return decision;
}

/** The Ack error of a rejection: the hook's status and HRESULT, else 403 `E_ACCESSDENIED`. */
function rejection(decision: Extract<Decision, { action: 'reject' }>): BitsError {
  const status = decision.status ?? 403;
  const hresult = decision.hresult ?? (status === 403 ? HResult.AccessDenied : HResult.HttpErrorBase + status);
  return new BitsError('BITS_ACCESS_DENIED', decision.message ?? 'refused by the create hook', { status, hresult });
}

/**
 * The location of a name chosen by a hook: decoded and confined exactly like a path the client
 * sent (`..`, NUL, backslashes, colons refused), and still in the same vdir.
 *
 * @throws {BitsError} `BITS_BAD_PATH`.
 */
function renamed(ctx: PacketContext, name: string): Location {
  const vdir = ctx.loc.vdir;
  const raw = `${vdir.path === '/' ? '' : vdir.path}/${name.split('/').map(encodeURIComponent).join('/')}`;
  const loc = ctx.vdirs.locate(raw);
  if (loc?.vdir !== vdir) throw new BitsError('BITS_BAD_PATH', `the name "${name}" a create hook chose is outside ${vdir.path}`);
  return loc;
}

/**
 * Runs the vdir's Create-Session hooks, before anything of the session exists: the in-process
 * `onSessionCreate`, then the `createWebhook`. Either may reject (the Ack carries its status and
 * HRESULT) or rename (the later rename wins); both see the client's request.
 *
 * @returns where the session's upload goes: the request's location, or the chosen name's.
 * @throws {BitsError} the rejection, `BITS_BAD_PATH` for a chosen name that is not allowed, or a
 * `BITS_APPLICATION_*` error when the webhook fails.
 */
export async function decideCreate(ctx: PacketContext): Promise<Location> {
  const { onSessionCreate, createWebhook } = ctx.vdirHooks;
  if (!onSessionCreate && !createWebhook) return ctx.loc;
  const request = createRequest(ctx);
  let loc = ctx.loc;
  const apply = (decision: Decision): void => {
    if (decision.action === 'reject') throw rejection(decision);
    if (decision.action === 'rename') loc = renamed(ctx, decision.name);
  };
  if (onSessionCreate) {
    const decision = parseDecision(await onSessionCreate(request));
    if (typeof decision === 'string') throw new Error(`onSessionCreate of ${request.vdir} returned no decision: ${decision}`);
    apply(decision);
  }
  if (createWebhook) apply(await askWebhook(ctx, createWebhook, request));
  if (loc !== ctx.loc) ctx.logger.info({ vdir: request.vdir, url: request.urlPath, to: loc.urlPath }, 'a create hook chose the destination name');
  return loc;
}
