import { useEffect, useRef, useState } from 'preact/hooks';
import type { Session } from './api.js';
import { formatBytes } from './format.js';
import { percent } from './sessions.js';

/**
 * Asks before a session is cancelled: a modal dialog naming the upload and what is lost. `confirm`
 * runs the cancel; the dialog stays open (busy) until it is done, and shows why when it failed.
 */
export function ConfirmCancel({ session, onConfirm, onClose }: { session: Session | null; onConfirm(s: Session): Promise<void>; onClose(): void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<string | null>(null);

  useEffect(() => {
    const d = dialog.current;
    if (!d) return;
    if (session && !d.open) {
      setFailure(null);
      d.showModal();
    } else if (!session && d.open) d.close();
  }, [session]);

  const confirm = async () => {
    if (!session) return;
    setBusy(true);
    try {
      await onConfirm(session);
    } catch (err) {
      setFailure((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  const p = session ? percent(session) : undefined;
  return (
    <dialog ref={dialog} class="confirm" aria-labelledby="confirm-title" onClose={onClose}>
      {session ? (
        <div>
          <h2 id="confirm-title">Cancel this upload?</h2>
          <p class="path">{session.urlPath}</p>
          <p>
            {formatBytes(session.received)} received{p !== undefined ? ` (${p.toFixed(1)} %)` : ''}. The bytes are discarded and the
            client is told the session no longer exists, exactly as if it had sent Cancel-Session.
          </p>
          {failure ? <p class="bad" role="alert">{failure}</p> : null}
          <div class="buttons">
            <button type="button" onClick={() => dialog.current?.close()} disabled={busy}>
              Keep uploading
            </button>
            <button type="button" class="danger" onClick={() => void confirm()} disabled={busy}>
              {busy ? 'Cancelling…' : 'Cancel upload'}
            </button>
          </div>
        </div>
      ) : null}
    </dialog>
  );
}
