import type { AgentJobState, Priority } from '../client/agent-protocol.js';

/** Priority levels as numbers: lower is served first. */
export const LEVEL: Readonly<Record<Priority, number>> = { foreground: 0, high: 1, normal: 2, low: 3 };

/** What the scheduler needs to know of a job. */
export interface Schedulable {
  readonly id: string;
  readonly priority: Priority;
  readonly state: AgentJobState;
  /** A `complete` waits to be done (an upload's Close-Session): served at once, like foreground. */
  readonly completing: boolean;
  readonly createdAt: number;
  /** Since when it waits for a slot. */
  readonly queuedAt: number;
  /** When it last had a slot. */
  readonly servedAt: number | undefined;
  /** Running now: since when, and at which effective level it was started. */
  readonly running: { readonly since: number; readonly level: number } | undefined;
  /** Whether its hosts can be reached now (network awareness). */
  readonly routable: boolean;
}

/** The scheduler's settings. */
export interface SchedulePolicy {
  /** Background jobs transferring at once (foreground jobs run outside this limit). */
  readonly maxConcurrent: number;
  /** A running job gives its slot to a waiting job of the same level after this long. */
  readonly sliceMs: number;
  /** A waiting job is served one level higher for every `agingMs` it waited (never above `high`). */
  readonly agingMs: number;
}

/** States in which a job wants to transfer. */
const ACTIVE: ReadonlySet<AgentJobState> = new Set(['QUEUED', 'CONNECTING', 'TRANSFERRING', 'TRANSIENT_ERROR']);

/**
 * The level a job competes at now: its priority's, raised one level per `agingMs` it waited for a
 * slot (never above `high`); a running job keeps the level it was started at.
 *
 * @example
 * ```ts
 * effectiveLevel({ priority: 'low', queuedAt: 0, running: undefined }, 25 * 60_000, { agingMs: 10 * 60_000 }); // 1 (high)
 * ```
 */
export function effectiveLevel(j: Pick<Schedulable, 'priority' | 'queuedAt' | 'running'>, now: number, p: Pick<SchedulePolicy, 'agingMs'>): number {
  const base = LEVEL[j.priority];
  if (base === 0) return 0;
  if (j.running) return j.running.level;
  const aged = p.agingMs > 0 ? Math.floor(Math.max(0, now - j.queuedAt) / p.agingMs) : 0;
  return Math.max(1, base - aged);
}

/**
 * Which jobs should be running now. The rule:
 *
 * 1. foreground jobs, and jobs whose `complete` is pending, always run, outside the limit;
 * 2. background jobs fill `maxConcurrent` slots by effective
 *    level (see {@link effectiveLevel}); within a level a running job keeps its slot for
 *    `sliceMs`, then the one served longest ago goes first (round-robin);
 * 3. a running job retrying a transient error keeps running but takes no slot;
 * 4. a job whose hosts cannot be reached (no route) does not run.
 *
 * No job starves: a waiting job rises a level every `agingMs`, reaches `high`, and there gets its
 * turn within one round of slices.
 *
 * @example
 * ```ts
 * const run = pickRunning(jobs, Date.now(), { maxConcurrent: 2, sliceMs: 300_000, agingMs: 600_000 });
 * ```
 */
export function pickRunning(jobs: readonly Schedulable[], now: number, p: SchedulePolicy): Set<string> {
  const out = new Set<string>();
  const background: { job: Schedulable; level: number; fresh: boolean }[] = [];
  for (const j of jobs) {
    if (!j.routable) continue;
    if (j.completing && j.state === 'TRANSFERRED') {
      out.add(j.id);
      continue;
    }
    if (!ACTIVE.has(j.state)) continue;
    const level = effectiveLevel(j, now, p);
    if (level === 0) out.add(j.id);
    else background.push({ job: j, level, fresh: j.running !== undefined && now - j.running.since < p.sliceMs });
  }
  background.sort(
    (a, b) =>
      a.level - b.level ||
      Number(b.fresh) - Number(a.fresh) ||
      // (a job never served goes before any that was)
      (a.job.servedAt ?? -1) - (b.job.servedAt ?? -1) ||
      a.job.createdAt - b.job.createdAt ||
      (a.job.id < b.job.id ? -1 : 1),
  );
  let free = p.maxConcurrent;
  for (const { job } of background) {
    if (job.running && job.state === 'TRANSIENT_ERROR') {
      out.add(job.id);
      continue;
    }
    if (free > 0) {
      out.add(job.id);
      free--;
    }
  }
  return out;
}
