import type { ErrorEntry, VdirStats } from './api.js';
import { formatBytes, formatClock, formatCount, formatRate, shortId } from './format.js';

/** Per-vdir totals since the server started, with the current receive rate. */
export function VdirTable({ vdirs, rate }: { vdirs: readonly VdirStats[]; rate(path: string): number | undefined }) {
  return (
    <section class="panel vdirs" aria-labelledby="vdirs-title">
      <header class="panel-head">
        <h2 id="vdirs-title">Virtual directories</h2>
      </header>
      <div class="scroll">
        <table>
          <thead>
            <tr>
              <th scope="col">vdir</th>
              <th scope="col">active</th>
              <th scope="col">received</th>
              <th scope="col">rate</th>
              <th scope="col">committed</th>
              <th scope="col">packets</th>
              <th scope="col">errors</th>
            </tr>
          </thead>
          <tbody>
            {vdirs.map((v) => (
              <tr key={v.path} data-vdir={v.path}>
                <th scope="row">{v.path}</th>
                <td>{formatCount(v.sessionsActive)}</td>
                <td>{formatBytes(v.bytesReceived)}</td>
                <td>{formatRate(rate(v.path) ?? 0)}</td>
                <td>{formatCount(v.uploadsCommitted)}</td>
                <td>{formatCount(v.packets)}</td>
                <td class={v.errors > 0 ? 'bad' : ''}>{formatCount(v.errors)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

/** The most recent error answers, newest first, with their HRESULT, its name and the reason. */
export function ErrorList({ errors }: { errors: readonly ErrorEntry[] }) {
  return (
    <section class="panel errors" aria-labelledby="errors-title">
      <header class="panel-head">
        <h2 id="errors-title">
          Recent errors <span class="count">{errors.length}</span>
        </h2>
      </header>
      {errors.length === 0 ? (
        <p class="empty">No error since the server started.</p>
      ) : (
        <ol class="error-list">
          {errors.map((e, i) => (
            <li key={`${e.time}-${i}`} class="error">
              <div class="error-head">
                <time dateTime={e.time}>{formatClock(e.time)}</time>
                <span class="status">{e.status}</span>
                {e.hresult ? <code class="hresult">{e.hresult}</code> : null}
                {e.name ? <code class="hresult-name">{e.name}</code> : null}
              </div>
              <div class="reason">{e.reason}</div>
              <div class="error-meta">
                {e.packet ? <span>{e.packet}</span> : null}
                {e.vdir ? <span>{e.vdir}</span> : null}
                {e.session ? <span title={e.session}>session {shortId(e.session)}</span> : null}
              </div>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
