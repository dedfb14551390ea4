// How numbers, times and rates read on the dashboard.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** `1536` → `1.5 KiB`. */
export function formatBytes(n: number): string {
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = unit === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

/** Bytes per second, e.g. `2.40 MiB/s`. */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** A whole number with thousands separators. */
export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** A duration in seconds, coarse: `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 48) return `${h} h ${min % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** How long ago an ISO time was, relative to `now` (ms). */
export function formatAgo(iso: string, now: number): string {
  return `${formatDuration((now - Date.parse(iso)) / 1000)} ago`;
}

/** The local wall-clock time of an ISO time, `14:03:27`. */
export function formatClock(iso: string | number): string {
  return new Date(iso).toLocaleTimeString('en-GB', { hour12: false });
}

/** A session id without braces, shortened to its first group: `{1B2C…}` → `1b2c3d4e`. */
export function shortId(id: string): string {
  return id.replace(/[{}]/g, '').split('-')[0]!.toLowerCase();
}
