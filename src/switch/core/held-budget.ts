/**
 * What link-condition queues (held-queue.ts) may allocate, per client
 * address and in all (issue 21): a leaf, so the network's options and the
 * queues share it.
 */

/** limits.conditionBytes: all link-condition queues of a switchd together. */
export const DEFAULT_HELD_TOTAL = 256 * 1024 * 1024
/** limits.conditionBytesPerAddress: the queues of one client address's ports together (about 7 full default queues). */
export const DEFAULT_HELD_PER_CLIENT = 64 * 1024 * 1024
/** Largest either may be set to: 64 GiB. */
export const MAX_HELD_BYTES = 64 * 1024 * 1024 * 1024

/**
 * Bytes that link-condition queues may allocate: `total` for all of them,
 * `perClient` for the ports of one client address (limits.conditionBytes,
 * limits.conditionBytesPerAddress). Slow path: charged when a queue grows.
 */
export class HeldBudget {
  /** Bytes every queue holds now. */
  used = 0
  /** Times a queue could not grow and dropped its frame. */
  refused = 0
  private readonly byClient = new Map<string, number>()

  constructor (public total: number, public perClient: number) {}

  /** Bytes the ports of `client` hold now. */
  of (client: string): number { return this.byClient.get(client) ?? 0 }

  /**
   * Charge `n` bytes to `client` (Port.clientKey: a WebSocket port's address, any other port itself;
   * '' counts against the total only); false if over either limit.
   */
  take (client: string, n: number): boolean {
    if (this.used + n > this.total) { this.refused++; return false }
    if (client !== '') {
      const c = this.of(client) + n
      if (c > this.perClient) { this.refused++; return false }
      this.byClient.set(client, c)
    }
    this.used += n
    return true
  }

  /** Bytes `client` may still take. */
  room (client: string): number {
    const all = this.total - this.used
    return client === '' ? all : Math.min(all, this.perClient - this.of(client))
  }

  give (client: string, n: number): void {
    this.used -= n
    if (client === '') return
    const c = this.of(client) - n
    if (c <= 0) this.byClient.delete(client); else this.byClient.set(client, c)
  }
}
