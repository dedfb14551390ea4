import type { DestinationClaims } from '../types.js';

/**
 * {@link DestinationClaims} held in this process's memory: enough for a single node without
 * PostgreSQL (a farm uses the record store's claims, which hold across nodes).
 *
 * @example
 * ```ts
 * const claims = new InProcessClaims();
 * const claim = await claims.claim('s3://bits-uploads/uploads/a.bin');
 * try { ... } finally { await claim?.release(); }
 * ```
 */
export class InProcessClaims implements DestinationClaims {
  readonly #held = new Set<string>();

  async claim(name: string): Promise<{ release(): Promise<void> } | undefined> {
    if (this.#held.has(name)) return undefined;
    this.#held.add(name);
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        this.#held.delete(name);
      },
    };
  }
}
