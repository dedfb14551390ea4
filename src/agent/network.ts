import { networkInterfaces } from 'node:os';
import { isIP } from 'node:net';

/**
 * Whether a URL's host is this machine (loopback): such hosts are reachable without a network.
 *
 * @example
 * ```ts
 * isLocalHost(new URL('http://127.0.0.1:8080/up')); // true
 * ```
 */
export function isLocalHost(url: URL): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/**
 * Whether this machine has a usable network: an interface that is up with an address other than
 * loopback and IPv6 link-local. On Linux and macOS alike Node lists only interfaces that are up
 * and have an address, so a cable pulled, Wi-Fi gone or a VPN-only machine whose tunnel dropped
 * reads as offline.
 *
 * @example
 * ```ts
 * if (!hasUsableNetwork()) console.log('offline');
 * ```
 */
export function hasUsableNetwork(list: ReturnType<typeof networkInterfaces> = networkInterfaces()): boolean {
  for (const addrs of Object.values(list)) {
    for (const a of addrs ?? []) {
      if (a.internal) continue;
      if (a.family === 'IPv6' && /^fe80:/i.test(a.address)) continue;
      return true;
    }
  }
  return false;
}
