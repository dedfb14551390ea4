import { parseRate } from '../client/agent-protocol.js';

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;

/** One window of a schedule: days of the week (0 = Sunday), minutes from midnight, a rate. */
interface Window {
  readonly key: string;
  readonly days: ReadonlySet<number>;
  readonly from: number;
  /** Exclusive; below `from` for a window that runs past midnight. */
  readonly to: number;
  readonly rateBps: number | undefined;
}

function day(text: string, key: string): number {
  const i = DAYS.indexOf(text.toLowerCase().slice(0, 3) as (typeof DAYS)[number]);
  if (i < 0 || text.length < 3) throw new RangeError(`schedule "${key}": "${text}" is not a day (Mon, Tue, … Sun)`);
  return i;
}

function days(text: string, key: string): Set<number> {
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const [a, b] = part.split('-');
    const first = day(a!.trim(), key);
    const last = b === undefined ? first : day(b.trim(), key);
    for (let d = first; ; d = (d + 1) % 7) {
      out.add(d);
      if (d === last) break;
    }
  }
  return out;
}

function minutes(text: string, key: string): number {
  const m = /^(\d{1,2}):(\d{2})$/.exec(text);
  const h = Number(m?.[1]);
  const min = Number(m?.[2]);
  if (!m || h > 24 || min > 59 || (h === 24 && min > 0)) throw new RangeError(`schedule "${key}": "${text}" is not a time (HH:MM)`);
  return h * 60 + min;
}

/**
 * A week of bandwidth limits, in the spirit of BITS's group policy: windows such as
 * `"Mon-Fri 08:00-18:00": "1M"` (days, then a time range in local time; `Sat,Sun`, `Fri-Mon` and
 * windows past midnight such as `22:00-06:00` work), and `"default"` for the rest of the time. The
 * first window that holds the moment wins, in the order written.
 *
 * @example
 * ```ts
 * const s = RateSchedule.parse({ 'Mon-Fri 08:00-18:00': '1M', default: 'unlimited' });
 * s.rateAt(new Date('2026-12-07T09:30:00')); // 1048576 (a Monday)
 * ```
 */
export class RateSchedule {
  private constructor(
    private readonly windows: readonly Window[],
    private readonly fallback: number | undefined,
  ) {}

  /**
   * Parses a schedule object.
   *
   * @throws {RangeError} naming the entry that is wrong.
   */
  static parse(value: unknown): RateSchedule {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new RangeError('a rate schedule is an object of "Days HH:MM-HH:MM": "rate" entries');
    const windows: Window[] = [];
    let fallback: number | undefined;
    for (const [key, rate] of Object.entries(value as Record<string, unknown>)) {
      if (typeof rate !== 'string' && typeof rate !== 'number') throw new RangeError(`schedule "${key}": the rate must be a string such as "1M" or "unlimited"`);
      const rateBps = parseRate(String(rate));
      if (key.trim().toLowerCase() === 'default') {
        fallback = rateBps;
        continue;
      }
      const m = /^\s*(\S+)\s+(\S+)-(\S+)\s*$/.exec(key);
      if (!m) throw new RangeError(`schedule "${key}": expected "Days HH:MM-HH:MM" (e.g. "Mon-Fri 08:00-18:00") or "default"`);
      const from = minutes(m[2]!, key);
      const to = minutes(m[3]!, key);
      if (from === to) throw new RangeError(`schedule "${key}": the window is empty`);
      windows.push({ key, days: days(m[1]!, key), from, to, rateBps });
    }
    return new RateSchedule(windows, fallback);
  }

  /** The limit at `when` (local time), `undefined` for unlimited. */
  rateAt(when: Date): number | undefined {
    const d = when.getDay();
    const t = when.getHours() * 60 + when.getMinutes();
    for (const w of this.windows) {
      if (w.from < w.to) {
        if (w.days.has(d) && t >= w.from && t < w.to) return w.rateBps;
      } else if ((w.days.has(d) && t >= w.from) || (w.days.has((d + 6) % 7) && t < w.to)) {
        // A window past midnight belongs to the day it starts on.
        return w.rateBps;
      }
    }
    return this.fallback;
  }
}
