// A server killed with SIGKILL in the middle of an upload loses nothing it acknowledged.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BITS_PROTOCOL_GUID } from '../src/protocol/constants.js';
import { RawConnection, bitsRequestBytes } from './helpers/raw-http.js';
import { exchange, sendFrom } from './helpers/upload.js';
import { startCli } from './helpers/cli.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('crash recovery', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('SIGKILL mid-fragment, restart, resume: every acknowledged byte is there and the file is byte-identical', async () => {
    const base = await mkdtemp(join(tmpdir(), 'bits-crash-'));
    dirs.push(base);
    const args = ['--root', join(base, 'uploads'), '--state-dir', join(base, 'state'), '--log-level', 'info'];
    const data = randomBytes(12 * 1024 * 1024);
    const path = '/crash.bin';
    const fragment = 2 * 1024 * 1024;

    let server = await startCli(args);
    let c = await RawConnection.connect(server.port);
    const created = await exchange(c, bitsRequestBytes({ type: 'Create-Session', path, headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID } }));
    const id = created.headers['bits-session-id']!;
    // Two acknowledged fragments.
    await sendFrom(c, path, id, data, 0, fragment, 2 * fragment);
    // Third fragment: head and half its body, then the server dies.
    const third = bitsRequestBytes({
      type: 'Fragment',
      path,
      sessionId: id,
      headers: { 'Content-Range': `bytes ${2 * fragment}-${3 * fragment - 1}/${data.length}` },
      body: data.subarray(2 * fragment, 3 * fragment),
    });
    await c.write(third.subarray(0, third.length - fragment / 2));
    await sleep(300);
    server.child.kill('SIGKILL');
    await new Promise((r) => server.child.once('exit', r));
    c.close();

    server = await startCli(args);
    try {
      c = await RawConnection.connect(server.port);
      // Windows resumes with a Ping, then resends from its last acknowledged offset.
      const ping = await exchange(c, bitsRequestBytes({ type: 'Ping', path }));
      assert.equal(ping.status, 200, JSON.stringify(ping.headers));
      // Probing from 0 shows where the server stands: at least the acknowledged 4 MiB.
      const probe = await exchange(
        c,
        bitsRequestBytes({ type: 'Fragment', path, sessionId: id, headers: { 'Content-Range': `bytes 0-0/${data.length}` }, body: data.subarray(0, 1) }),
      );
      assert.equal(probe.status, 200, JSON.stringify(probe.headers));
      const held = Number(probe.headers['bits-received-content-range']);
      assert.ok(held >= 4 * 1024 * 1024, `server holds ${held} bytes, acknowledged 4 MiB`);
      await sendFrom(c, path, id, data, held, fragment);
      const closed = await exchange(c, bitsRequestBytes({ type: 'Close-Session', path, sessionId: id }));
      assert.equal(closed.status, 200);
      c.close();
      assert.equal(sha(await readFile(join(base, 'uploads', 'crash.bin'))), sha(data));
    } finally {
      server.child.kill('SIGTERM');
      await new Promise((r) => server.child.once('exit', r));
    }
  });
  it('SIGKILL at random points during many small fragments: after each restart every acknowledged offset is held', async () => {
    const base = await mkdtemp(join(tmpdir(), 'bits-crash-small-'));
    dirs.push(base);
    const args = ['--root', join(base, 'uploads'), '--state-dir', join(base, 'state'), '--log-level', 'info'];
    const data = randomBytes(24 * 1024 * 1024);
    const path = '/small.bin';
    let server = await startCli(args);
    let c = await RawConnection.connect(server.port);
    const created = await exchange(c, bitsRequestBytes({ type: 'Create-Session', path, headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID } }));
    const id = created.headers['bits-session-id']!;
    let acked = 0;
    try {
      for (let kill = 0; kill < 5 && acked < data.length; kill++) {
        // Fragments of 1-96 KiB, sent one after the other, until the server dies under them.
        const dies = sleep(150 + Math.floor(Math.random() * 400)).then(() => server.child.kill('SIGKILL'));
        const exited = new Promise((r) => server.child.once('exit', r));
        try {
          for (let n = 0; n < 100_000 && acked < data.length; n++) {
            const length = Math.min(data.length - acked, 1024 + Math.floor(Math.random() * 95 * 1024));
            const res = await exchange(
              c,
              bitsRequestBytes({
                type: 'Fragment',
                path,
                sessionId: id,
                headers: { 'Content-Range': `bytes ${acked}-${acked + length - 1}/${data.length}` },
                body: data.subarray(acked, acked + length),
              }),
            );
            assert.equal(res.status, 200, JSON.stringify(res.headers));
            acked = Number(res.headers['bits-received-content-range']);
          }
        } catch (err) {
          // (the connection died with the server; anything else is a failure)
          if ((err as { code?: string }).code === 'ERR_ASSERTION') throw err;
        }
        await dies;
        await exited;
        c.close();
        server = await startCli(args);
        c = await RawConnection.connect(server.port);
        const probe = await exchange(
          c,
          bitsRequestBytes({ type: 'Fragment', path, sessionId: id, headers: { 'Content-Range': `bytes 0-0/${data.length}` }, body: data.subarray(0, 1) }),
        );
        assert.equal(probe.status, 200, JSON.stringify(probe.headers));
        const held = Number(probe.headers['bits-received-content-range']);
        assert.ok(held >= acked, `after kill ${kill + 1} the server holds ${held} bytes; ${acked} were acknowledged`);
        acked = held;
      }
      await sendFrom(c, path, id, data, acked, 256 * 1024);
      const closed = await exchange(c, bitsRequestBytes({ type: 'Close-Session', path, sessionId: id }));
      assert.equal(closed.status, 200);
      assert.equal(sha(await readFile(join(base, 'uploads', 'small.bin'))), sha(data), 'the committed file is byte-identical');
    } finally {
      c.close();
      server.child.kill('SIGTERM');
      await new Promise((r) => server.child.once('exit', r));
    }
  });
  it('SIGKILL at a random point of many small uploads at once (Create, one Fragment, Close): every acknowledged step holds after the restart', async (t) => {
    const base = await mkdtemp(join(tmpdir(), 'bits-crash-intake-'));
    dirs.push(base);
    const uploads = join(base, 'uploads');
    const args = ['--root', uploads, '--state-dir', join(base, 'state'), '--log-level', 'info'];
    const size = 4096;
    const data = randomBytes(size * 400);
    const bytesOf = (i: number) => data.subarray(i * size, (i + 1) * size);
    const pathOf = (i: number) => `/intake/f${i}.bin`;
    // What the server acknowledged of each upload: its session, then its Fragment, then its Close.
    const acked: { id?: string; fragment?: boolean; closed?: boolean }[] = [];
    let server = await startCli(args);
    let next = 0;
    const worker = async (c: RawConnection): Promise<void> => {
      for (let i = next++; i < 400; i = next++) {
        const state: { id?: string; fragment?: boolean; closed?: boolean } = {};
        acked[i] = state;
        const path = pathOf(i);
        const created = await exchange(c, bitsRequestBytes({ type: 'Create-Session', path, headers: { 'BITS-Supported-Protocols': BITS_PROTOCOL_GUID } }));
        assert.equal(created.status, 200);
        state.id = created.headers['bits-session-id']!;
        const frag = await exchange(
          c,
          bitsRequestBytes({ type: 'Fragment', path, sessionId: state.id, headers: { 'Content-Range': `bytes 0-${size - 1}/${size}` }, body: bytesOf(i) }),
        );
        assert.equal(frag.status, 200, JSON.stringify(frag.headers));
        assert.equal(frag.headers['bits-received-content-range'], String(size));
        state.fragment = true;
        const closed = await exchange(c, bitsRequestBytes({ type: 'Close-Session', path, sessionId: state.id }));
        assert.equal(closed.status, 200);
        state.closed = true;
      }
    };
    const conns = await Promise.all(Array.from({ length: 8 }, () => RawConnection.connect(server.port)));
    const exited = new Promise((r) => server.child.once('exit', r));
    const dies = sleep(200 + Math.floor(Math.random() * 600)).then(() => server.child.kill('SIGKILL'));
    await Promise.all(
      conns.map((c) =>
        worker(c).catch((err: unknown) => {
          // (the connection died with the server; anything else is a failure)
          if ((err as { code?: string }).code === 'ERR_ASSERTION') throw err;
        }),
      ),
    );
    await dies;
    await exited;
    for (const c of conns) c.close();
    const counts = { closed: 0, fragment: 0, created: 0 };
    server = await startCli(args);
    const c = await RawConnection.connect(server.port);
    try {
      for (const [i, state] of acked.entries()) {
        if (!state?.id) continue;
        const file = join(uploads, 'intake', `f${i}.bin`);
        if (state.closed) {
          counts.closed++;
          assert.deepEqual(await readFile(file), bytesOf(i), `upload ${i} was closed: it is in place, byte for byte`);
          continue;
        }
        // A session acknowledged: it is still there, and holds what its Fragment Ack said (a
        // one-byte probe: it cannot stand in for bytes the server lost).
        const probe = await exchange(
          c,
          bitsRequestBytes({ type: 'Fragment', path: pathOf(i), sessionId: state.id, headers: { 'Content-Range': `bytes 0-0/${size}` }, body: bytesOf(i).subarray(0, 1) }),
        );
        const placed = await readFile(file).catch(() => undefined);
        if (probe.status !== 200) {
          // Only a Close the server carried out before it died (its Ack lost) may have ended the session.
          assert.ok(state.fragment, `upload ${i}: its acknowledged session is gone (${probe.status} ${JSON.stringify(probe.headers)})`);
          assert.deepEqual(placed, bytesOf(i), `upload ${i}: the session ended, so its Close went through`);
          continue;
        }
        const held = Number(probe.headers['bits-received-content-range']);
        if (state.fragment) {
          counts.fragment++;
          assert.equal(held, size, `upload ${i}: its Fragment was acknowledged`);
        } else {
          counts.created++;
          if (held < size) await sendFrom(c, pathOf(i), state.id, bytesOf(i), held, size);
        }
        const closed = await exchange(c, bitsRequestBytes({ type: 'Close-Session', path: pathOf(i), sessionId: state.id }));
        assert.equal(closed.status, 200, JSON.stringify(closed.headers));
        assert.deepEqual(await readFile(file), bytesOf(i), `upload ${i}: committed after the restart, byte for byte`);
      }
      t.diagnostic(`at the kill: ${counts.closed} uploads closed, ${counts.fragment} with their Fragment acknowledged, ${counts.created} created only`);
      assert.ok(counts.closed + counts.fragment + counts.created > 0, 'the server died before acknowledging anything: nothing was tested');
    } finally {
      c.close();
      server.child.kill('SIGTERM');
      await new Promise((r) => server.child.once('exit', r));
    }
  });
});
