/** Defaults of `bits agent`, with their units. */
export const AGENT_DEFAULTS = {
  /** Background jobs transferring at once. */
  maxConcurrent: 2,
  /** A running job gives its slot to a waiting one of its level after this long (ms). */
  sliceMs: 5 * 60_000,
  /** A waiting job rises one priority level per this long (ms). */
  agingMs: 10 * 60_000,
  /** ACKNOWLEDGED and CANCELLED jobs are listed this long, then forgotten (ms). */
  retainMs: 24 * 3_600_000,
  /** A job's first retry wait, unless it sets its own (ms). */
  minRetryDelayMs: 30_000,
  /** A job goes to ERROR after this long without progress, unless it sets its own (ms): BITS's 14 days. */
  noProgressTimeoutMs: 14 * 24 * 3_600_000,
  /** How often the network is looked at (ms). */
  networkPollMs: 2_000,
} as const;

