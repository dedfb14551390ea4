import { useEffect, useRef, useState } from 'preact/hooks';
import { SignInNeeded, cancelSession, readSnapshot } from './api.js';
import type { Session, Snapshot } from './api.js';
import { ThroughputChart } from './chart.js';
import { ConfirmCancel } from './confirm.js';
import { formatClock, formatDuration } from './format.js';
import { RateTracker } from './rates.js';
import { SessionList } from './sessions.js';
import { ErrorList, VdirTable } from './tables.js';

/** Time between two polls of the API. */
const POLL_MS = 1500;
/** Time between two polls while the page is hidden. */
const HIDDEN_POLL_MS = 10_000;

/** Polls the API until the page goes away; hands each snapshot or failure to the callbacks. */
function usePolling(onSnapshot: (s: Snapshot) => void, onFailure: (err: Error) => void): () => void {
  const wake = useRef<() => void>(() => {});
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        onSnapshot(await readSnapshot());
      } catch (err) {
        if (err instanceof SignInNeeded) {
          window.location.assign('/login');
          return;
        }
        onFailure(err as Error);
      }
      if (!stopped) timer = setTimeout(() => void poll(), document.hidden ? HIDDEN_POLL_MS : POLL_MS);
    };
    wake.current = () => {
      clearTimeout(timer);
      void poll();
    };
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, []);
  return () => wake.current();
}

function Header({ snapshot, failure }: { snapshot: Snapshot | null; failure: string | null }) {
  const signedIn = document.body.dataset['signin'] === '1';
  return (
    <header class="top">
      <div class="title">
        <h1>BITS upload</h1>
        {snapshot ? (
          <span class="node">
            {snapshot.stats.node} · up {formatDuration((snapshot.at - Date.parse(snapshot.stats.startedAt)) / 1000)}
          </span>
        ) : null}
      </div>
      <div class="top-right">
        <span class={`live ${failure ? 'live-down' : snapshot ? 'live-up' : ''}`} role="status">
          {failure ? `not updating: ${failure}` : snapshot ? `live · ${formatClock(snapshot.at)}` : 'connecting…'}
        </span>
        {signedIn ? (
          <form method="post" action="/logout">
            <button type="submit" class="link">Sign out</button>
          </form>
        ) : null}
      </div>
    </header>
  );
}

/** The dashboard: live sessions, throughput, per-vdir totals and recent errors, polled from the admin API. */
export function App() {
  const [snapshot, setSnapshot] = useState<Snapshot | null>(null);
  const [failure, setFailure] = useState<string | null>(null);
  const [pending, setPending] = useState<Session | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const sessionRates = useRef(new RateTracker());
  const vdirRates = useRef(new RateTracker());

  const refresh = usePolling(
    (s) => {
      sessionRates.current.update(new Map(s.sessions.map((x) => [x.id, x.received])), s.at);
      vdirRates.current.update(new Map(s.stats.vdirs.map((v) => [v.path, v.bytesReceived])), s.at);
      setSnapshot(s);
      setFailure(null);
    },
    (err) => setFailure(err.message),
  );

  const cancel = async (s: Session) => {
    const done = await cancelSession(s.id);
    setPending(null);
    setNotice(done ? `Cancelled ${s.urlPath}.` : `${s.urlPath} had already ended.`);
    refresh();
  };

  return (
    <>
      <Header snapshot={snapshot} failure={failure} />
      {notice ? (
        <p class="notice" role="status">
          {notice}{' '}
          <button type="button" class="link" onClick={() => setNotice(null)} aria-label="Dismiss">
            ×
          </button>
        </p>
      ) : null}
      {snapshot ? (
        <main>
          <SessionList sessions={snapshot.sessions} more={snapshot.more} rate={(id) => sessionRates.current.rate(id)} now={snapshot.at} onCancel={setPending} />
          <ThroughputChart buckets={snapshot.stats.throughput} now={snapshot.at} />
          <VdirTable vdirs={snapshot.stats.vdirs} rate={(path) => vdirRates.current.rate(path)} />
          <ErrorList errors={snapshot.errors} />
        </main>
      ) : (
        <main>
          <p class="empty">{failure ? `Cannot read the admin API: ${failure}` : 'Loading…'}</p>
        </main>
      )}
      <ConfirmCancel session={pending} onConfirm={cancel} onClose={() => setPending(null)} />
    </>
  );
}
