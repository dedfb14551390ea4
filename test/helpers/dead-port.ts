import net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A local port that nothing listens on: bound once to get a free number, then released, so a
 * connection to it is refused.
 *
 * @example
 * ```ts
 * const url = `http://127.0.0.1:${await deadPort()}/up/a.bin`;
 * ```
 */
export async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
