/**
 * The per-client shares of the gateway's flows (gateway-flows.ts): each
 * client (Port.clientKey: a WebSocket address or IPv6 /64) holds at most
 * `perClient` of the host sockets slirp keeps for the stations, so one
 * client cannot take the child's descriptors from the rest (issue 21,
 * finding 3). Share 0 is the budget of the published UDP ports' peers,
 * which belong to no client.
 *
 * The shares are slots in typed arrays, sized at construction (one per flow
 * at most, and the peers'); a client's slot is made when it opens its first
 * flow and freed with its last, so the map holds only clients with flows.
 * A frame of an existing flow never comes here; a new flow looks its client
 * up by key once.
 */

export class FlowShares {
  /** Flows each share holds, by share index. */
  readonly count: Int32Array
  private readonly of = new Map<string, number>()
  private readonly key: Array<string | undefined>
  private readonly free: number[] = []

  /** `n` shares (index 0 the peers'), each of at most `perClient` flows. */
  constructor (n: number, readonly perClient: number) {
    this.key = new Array<string | undefined>(n).fill(undefined)
    this.count = new Int32Array(n)
    this.refill()
  }

  /** Clients holding flows now. */
  get clients (): number { return this.of.size }

  /** Flows the client `key` holds. */
  flowsOf (key: string): number {
    const s = this.of.get(key)
    return s === undefined ? 0 : this.count[s] as number
  }

  /** The share index of client `key`, made on first use; -1 if it is full (or no share is left). */
  room (key: string): number {
    let s = this.of.get(key)
    if (s === undefined) {
      s = this.free.pop()
      if (s === undefined) return -1
      this.of.set(key, s)
      this.key[s] = key
    }
    return this.hasRoom(s) ? s : -1
  }

  /** Whether share `s` may take one more flow. */
  hasRoom (s: number): boolean { return (this.count[s] as number) < this.perClient }

  /** Share `s` took `n` more flows. */
  add (s: number, n: number): void { this.count[s] = (this.count[s] as number) + n }

  /** Share `s` let `n` flows go; a client's share with none left is freed. */
  release (s: number, n: number): void {
    const left = (this.count[s] as number) - n
    this.count[s] = left
    if (left > 0 || s === 0) return
    this.of.delete(this.key[s] as string)
    this.key[s] = undefined
    this.free.push(s)
  }

  /** No flows, no clients. */
  clear (): void {
    this.of.clear()
    this.key.fill(undefined)
    this.count.fill(0)
    this.refill()
  }

  private refill (): void {
    this.free.length = 0
    for (let i = this.count.length - 1; i >= 1; i--) this.free.push(i)
  }
}
