import type { Session } from './api.js';
import { formatAgo, formatBytes, formatDuration, formatRate, shortId } from './format.js';

/** A session that has not moved for this long shows as stalled. */
const STALLED_MS = 60_000;

/** Received of total, in percent; undefined while the size is not known. */
export function percent(s: Session): number | undefined {
  if (s.total === null) return undefined;
  return s.total === 0 ? 100 : Math.min(100, (s.received / s.total) * 100);
}

function ProgressBar({ session }: { session: Session }) {
  const p = percent(session);
  const label = `Progress of ${session.urlPath}`;
  if (p === undefined) {
    return <div class="bar bar-unknown" role="progressbar" aria-label={label} aria-valuetext={`${formatBytes(session.received)} of an unknown size`} />;
  }
  return (
    <div class="bar" role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={session.total!} aria-valuenow={session.received} aria-valuetext={`${p.toFixed(1)} %`}>
      <div class="bar-fill" style={{ width: `${p}%` }} />
    </div>
  );
}

function SessionCard({ session, rate, now, onCancel }: { session: Session; rate: number | undefined; now: number; onCancel(s: Session): void }) {
  const p = percent(session);
  const stalled = now - Date.parse(session.updatedAt) > STALLED_MS;
  const eta = rate && rate > 0 && session.total !== null ? (session.total - session.received) / rate : undefined;
  return (
    <li class="session" data-session={session.id}>
      <div class="session-head">
        <span class="path" title={session.urlPath}>{session.urlPath}</span>
        <span class={`state state-${stalled && session.state === 'receiving' ? 'stalled' : session.state}`}>{stalled && session.state === 'receiving' ? 'stalled' : session.state}</span>
      </div>
      <ProgressBar session={session} />
      <div class="session-figures">
        <span class="received">
          {formatBytes(session.received)}
          {session.total !== null ? ` of ${formatBytes(session.total)}` : ''}
          {p !== undefined ? ` · ${p.toFixed(1)} %` : ''}
        </span>
        <span class="rate">{rate === undefined ? '…' : formatRate(rate)}</span>
        {eta !== undefined ? <span class="eta">{formatDuration(eta)} left</span> : null}
      </div>
      <div class="session-meta">
        <span title={session.id}>id {shortId(session.id)}</span>
        {session.principal ? <span>user {session.principal}</span> : null}
        {session.client ? <span title={session.client.userAgent ?? ''}>from {session.client.address}</span> : null}
        <span>updated {formatAgo(session.updatedAt, now)}</span>
        <span>expires in {formatDuration((Date.parse(session.expiresAt) - now) / 1000)}</span>
        {session.node ? <span>node {session.node}</span> : null}
      </div>
      <button type="button" class="danger cancel" onClick={() => onCancel(session)} aria-label={`Cancel ${session.urlPath}`}>
        Cancel…
      </button>
    </li>
  );
}

/** The live sessions, most recently active first, each with its progress, rate and a Cancel button. */
export function SessionList(props: {
  sessions: readonly Session[];
  more: boolean;
  rate(id: string): number | undefined;
  now: number;
  onCancel(s: Session): void;
}) {
  const sorted = [...props.sessions].sort((a, b) => Date.parse(b.updatedAt) - Date.parse(a.updatedAt));
  return (
    <section class="panel sessions" aria-labelledby="sessions-title">
      <header class="panel-head">
        <h2 id="sessions-title">
          Sessions in progress <span class="count">{props.sessions.length}{props.more ? '+' : ''}</span>
        </h2>
      </header>
      {sorted.length === 0 ? (
        <p class="empty">No upload in progress.</p>
      ) : (
        <ul class="session-list">
          {sorted.map((s) => (
            <SessionCard key={s.id} session={s} rate={props.rate(s.id)} now={props.now} onCancel={props.onCancel} />
          ))}
        </ul>
      )}
      {props.more ? <p class="note">Only the first {props.sessions.length} sessions are shown.</p> : null}
    </section>
  );
}
