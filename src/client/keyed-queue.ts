/**
 * Runs tasks one after another per key (tasks of different keys run side by side): the saves of one
 * job's record are applied in call order, whatever each one's own timing. A task that fails does
 * not stop the ones after it; its caller gets the failure.
 *
 * @example
 * ```ts
 * const queue = new KeyedQueue();
 * await queue.run(record.id, () => writeRecord(record));
 * await queue.settled(record.id); // before removing it
 * ```
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();

  run(key: string, task: () => Promise<void>): Promise<void> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(task);
    this.tails.set(key, next);
    void next
      .finally(() => {
        if (this.tails.get(key) === next) this.tails.delete(key);
      })
      .catch(() => undefined);
    return next;
  }

  /** Waits for the tasks of `key` queued so far, whatever their outcome. */
  async settled(key: string): Promise<void> {
    await this.tails.get(key)?.catch(() => undefined);
  }
}
