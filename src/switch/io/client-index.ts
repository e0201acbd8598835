/**
 * A small dense index per client (the client key of a port: its address's),
 * for the native fast path's per-client share of its miss queue: all the
 * WebSocket ports of one client are charged together, so a client with many
 * ports gets no bigger share than one with one. Indices are reused once a
 * client's last port is gone; there are at most as many as the thread's
 * slots (1024), since every port taken holds one.
 */

export class ClientIndex {
  private readonly byKey = new Map<string, { index: number, ports: number }>()
  private readonly free: number[] = []
  private next = 0

  /** The client's index, counting one more port of it. */
  take (key: string): number {
    const c = this.byKey.get(key)
    if (c !== undefined) { c.ports++; return c.index }
    const index = this.free.pop() ?? this.next++
    this.byKey.set(key, { index, ports: 1 })
    return index
  }

  /** One port of the client is gone; its index is free again with its last. */
  give (key: string): void {
    const c = this.byKey.get(key)
    if (c === undefined) return
    if (--c.ports > 0) return
    this.byKey.delete(key)
    this.free.push(c.index)
  }

  get size (): number { return this.byKey.size }
}
