/**
 * The agent's uplink: a tapswitch.v1 WebSocket to switchd that keeps itself
 * connected.
 *
 * Each connection says hello, waits for the welcome, and only then carries
 * frames (state 'up'). When it drops, the next attempt waits an exponential
 * backoff with full jitter (min..max, doubling, reset by a welcome), so a
 * restarted switchd is not hit by every agent at the same instant. A close
 * with 4006 (the replica drains) is the exception: the next attempt goes at
 * once (uplink-advice.ts reconnectAtOnce), to the next URL if there are several.
 *
 * Options follow what we measured: perMessageDeflate off (the client default
 * is on, and costs 30-40x), maxPayload at the protocol's largest message
 * (the default is 100 MiB).
 *
 * A switch that refuses us (a wrong token, a policy: uplink-advice.ts) is
 * retried on that backoff a few times, then said once at error, with the
 * fix, and retried every 30 s to 5 min until a welcome.
 *
 * The switch pings every welcome.pingInterval seconds; an uplink that hears
 * nothing (no ping, no message) for two intervals plus one second is presumed
 * dead and replaced.
 *
 * What the switch sends is checked before it is used (issue 12): a batch
 * whose records do not tile the message is dropped and counted, so no
 * endpoint ever walks a record past the end; and a ping is answered only
 * while our send queue is under the high-water mark, so a switch that pings
 * and never reads cannot make us queue pongs without bound (ws's autoPong
 * answers every ping whatever is queued).
 */

import { EventEmitter } from 'node:events'
import WebSocket from 'ws'
import {
  SUBPROTOCOL_V1, PROTOCOL_VERSION, MAX_MESSAGE_SIZE, parseWelcome, countRecords, type Hello, type Welcome,
  CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR, CLOSE_DEAD_PEER, CLOSE_DRAINING, CAP_OFFLOAD
} from './protocol'
import { logger } from './log'
import {
  uplinkHint, refusalOfError, refusalOfClose, closeHint, reconnectDelay, reconnectAtOnce, REFUSALS_BEFORE_SLOW, REFUSED_MIN, REFUSED_MAX,
  type Refusal
} from './uplink-advice'
import { zeroMaskFor, ZERO_MASK } from './ws-mask'
import type { UplinkOptions } from './uplink-options'
import { takeOverUplink, type UplinkSocket, type UplinkTakeoverHook, type UplinkPath } from './uplink-native'

const log = logger('uplink')

const SEND_OPTS = { binary: true, compress: false, fin: true } as const

export type { UplinkTls, UplinkOptions } from './uplink-options'

export { uplinkHint } from './uplink-advice'
export { zeroMaskFor } from './ws-mask'

export type UplinkState = 'connecting' | 'up' | 'down' | 'closed'

export class UplinkStats {
  /** Round-trip time of the last ping answered, seconds; -1 before the first. */
  rttSeconds = -1
  rttSamples = 0
  connects = 0
  /** Connects that got the same port back (resume). */
  resumes = 0
  disconnects = 0
  rxMessages = 0
  rxBytes = 0
  txMessages = 0
  txBytes = 0
  /** Batch messages from the switch dropped because a record ran past the end. */
  rxMalformed = 0
  /** Pings from the switch left unanswered because our send queue was over the high-water mark. */
  pongsDropped = 0
}

export declare interface Uplink {
  on (event: 'up', listener: (welcome: Welcome) => void): this
  on (event: 'down', listener: (code: number, reason: string) => void): this
  on (event: string, listener: (...args: any[]) => void): this
}

export class Uplink extends EventEmitter {
  state: UplinkState = 'down'
  welcome: Welcome | undefined
  readonly stats = new UplinkStats()
  /** Called with each batch message from the switch (set by the agent). */
  onBatch: (msg: Buffer) => void = () => {}
  /** Called with each control (text) message after the welcome: BPDUs on a trunk. */
  onControl: (text: string) => void = () => {}
  /** A native data path for each connection (uplink-native.ts): tap-agent sets it for a TAP. */
  takeover: UplinkTakeoverHook | undefined
  /** Which path carries the current connection. */
  path: UplinkPath = { sock: undefined, path: 'js' }
  private ws: UplinkSocket | undefined
  private attempt = 0
  private retryTimer: NodeJS.Timeout | undefined
  private watchdog: NodeJS.Timeout | undefined
  private heard = false
  /** The resume token of the last welcome, and the URL it is good for. */
  private resumeToken: string | undefined
  private resumeUrl: string | undefined
  private urlIndex = 0
  /** What the error of the attempt under way said, if it was a refusal. */
  private refusal: Refusal | undefined
  private refused = 0
  /** When the last reconnect at once after a drain (4006) went (performance.now() ms). */
  private atOnceAt = -Infinity
  /** When the outstanding RTT ping left (performance.now() ms), or -1. */
  private pingSentAt = -1
  private readonly highWaterMark: number

  constructor (readonly opts: UplinkOptions) {
    super()
    this.highWaterMark = opts.highWaterMark ?? 1024 * 1024
  }

  get isUp (): boolean { return this.state === 'up' }

  /** Attempts refused (uplink-advice.ts) since the last welcome. */
  get refusedInARow (): number { return this.refused }

  start (): void {
    if (this.state === 'closed') return
    this.connect()
  }

  /**
   * Send one batch message; false (nothing sent) when not up or when the
   * switch is not reading fast enough. Never throws.
   */
  send (batch: Buffer): boolean {
    const ws = this.ws
    if (this.state !== 'up' || ws === undefined || ws.bufferedAmount > this.highWaterMark) return false
    ws.send(batch, SEND_OPTS)
    this.stats.txMessages++
    this.stats.txBytes += batch.length
    return true
  }

  /** Send a control (text) message; false when not up. */
  sendText (text: string): boolean {
    const ws = this.ws
    if (this.state !== 'up' || ws === undefined) return false
    ws.send(text)
    return true
  }

  /** Bytes ws holds that the switch has not taken yet. */
  get bufferedAmount (): number { return this.ws?.bufferedAmount ?? 0 }

  /** Drop the current connection (it reconnects as after any drop). */
  drop (code: number, reason: string): void {
    this.ws?.close(code, reason)
  }

  /** Close for good (no reconnect): whatever the switch sends after this, a welcome included, is ignored. */
  close (code = CLOSE_NORMAL, reason = 'agent stopping'): Promise<void> {
    this.state = 'closed'
    clearTimeout(this.retryTimer)
    clearInterval(this.watchdog)
    const ws = this.ws
    if (ws === undefined || ws.readyState === ws.CLOSED) return Promise.resolve()
    return new Promise((resolve) => {
      const t = setTimeout(() => { ws.terminate(); resolve() }, 1000)
      ws.once('close', () => { clearTimeout(t); resolve() })
      ws.close(code, reason)
    })
  }

  /** The switch URL in use (it changes on failover). */
  get url (): string {
    const urls = this.opts.urls ?? [this.opts.url]
    return urls[this.urlIndex % urls.length] as string
  }

  private connect (): void {
    this.state = 'connecting'
    const url = this.url
    const timeout = (this.opts.handshakeTimeout ?? 5) * 1000
    const ws = this.dial(url, timeout)
    let sock: UplinkSocket = ws as unknown as UplinkSocket
    this.ws = sock
    this.refusal = undefined
    this.path = { sock: undefined, path: 'js' }
    const welcomeTimer = setTimeout(() => {
      if (sock.readyState === sock.OPEN) {
        log.limited('warn', 'uplink_no_welcome', { url, seconds: timeout / 1000 + 1, hint: 'the WebSocket opened but no welcome came: is this a tapswitch switchd of the same version? retrying' })
      }
      sock.terminate()
    }, timeout + 1000)
    ws.on('error', (err: Error & { code?: string }) => {
      // Closed for good: the error is close()'s own abort of a dial (or what followed it), and nothing is retried.
      if (this.state === 'closed') return
      // A failure to connect is worth a person's look (warn), and always says what to do; one while up is the network's (uplink_lost follows).
      const up = this.state === 'up'
      this.refusal = up ? undefined : refusalOfError(err, url, this.opts.sources)
      const hint = up ? 'the connection broke while up: the network or switchd; reconnecting' : uplinkHint(err, url, this.opts.sources)
      log.limited('warn', 'uplink_error', { url, error: err.code ?? err.message, hint })
    })
    ws.on('open', () => {
      // Before the hello: from here a native thread may carry the connection (uplink-native.ts).
      try {
        this.path = takeOverUplink(ws, this.takeover, zeroMaskFor(url, this.opts.mask ?? 'auto'), this.highWaterMark)
      } catch (err) {
        log.limited('warn', 'uplink_native_failed', { url, error: (err as Error).message, hint: 'the native link did not start; reconnecting (tap-agent --no-fast-path keeps the JS path)' })
        clearTimeout(welcomeTimer)
        this.closed(sock, url, 1006, '')
        return
      }
      if (this.path.sock !== undefined) {
        sock = this.ws = this.path.sock
        this.wire(sock, url, welcomeTimer)
      }
      sock.send(JSON.stringify(this.hello(url)))
    })
    this.wire(sock, url, welcomeTimer)
  }

  /** The uplink's handlers on a connection's socket: ws's, then the native one's after a takeover. */
  private wire (ws: UplinkSocket, url: string, welcomeTimer: NodeJS.Timeout): void {
    ws.on('ping', (data: Buffer) => {
      this.heard = true
      if (ws.bufferedAmount > this.highWaterMark) { this.stats.pongsDropped++; return }
      ws.pong(data)
    })
    ws.on('pong', () => {
      this.heard = true
      if (this.pingSentAt >= 0) {
        this.stats.rttSeconds = (performance.now() - this.pingSentAt) / 1000
        this.stats.rttSamples++
        this.pingSentAt = -1
      }
    })
    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      // Closed for good: what the switch sent before our close frame reached it (a welcome above all) must not bring us back up.
      if (this.state === 'closed') return
      this.heard = true
      if (isBinary) { this.receiveBatch(ws, url, data as Buffer); return }
      if (this.state === 'up') { this.onControl((data as Buffer).toString('utf8')); return }
      this.receiveWelcome(ws, url, (data as Buffer).toString('utf8'), welcomeTimer)
    })
    ws.on('close', (code: number, reason: Buffer) => {
      clearTimeout(welcomeTimer)
      this.closed(ws, url, code, reason.toString())
    })
  }

  /** The WebSocket to `url`: the token in the upgrade's header, the mask and the TLS files as asked. */
  private dial (url: string, timeout: number): WebSocket {
    const headers: Record<string, string> = {}
    if (this.opts.token !== undefined) headers.authorization = `Bearer ${this.opts.token}`
    const tls = this.opts.tls ?? {}
    return new WebSocket(url, [SUBPROTOCOL_V1], {
      perMessageDeflate: false,
      maxPayload: MAX_MESSAGE_SIZE,
      // Pongs are answered below, within the high-water mark.
      autoPong: false,
      handshakeTimeout: timeout,
      headers,
      ...(zeroMaskFor(url, this.opts.mask ?? 'auto') ? { generateMask: ZERO_MASK } : {}),
      ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
      ...(tls.cert !== undefined ? { cert: tls.cert, key: tls.key } : {})
    })
  }

  private hello (url: string): Hello {
    const hello: Hello = { type: 'hello', version: PROTOCOL_VERSION, capabilities: [...(this.opts.capabilities ?? [])] }
    if (this.opts.name !== undefined) hello.name = this.opts.name
    if (this.opts.mtu !== undefined) hello.mtu = this.opts.mtu
    if (this.opts.mac !== undefined) hello.mac = this.opts.mac
    if (this.opts.vlan !== undefined) hello.vlan = this.opts.vlan
    // A resume token is only good at the switch that issued it.
    if (this.resumeToken !== undefined && this.resumeUrl === url && this.opts.resume !== false) hello.resume = this.resumeToken
    return hello
  }

  /** A batch message from the switch: counted and handed on, or counted as malformed (a record runs past the end). */
  private receiveBatch (ws: UplinkSocket, url: string, msg: Buffer): void {
    if (this.state !== 'up') { ws.close(CLOSE_PROTOCOL_ERROR, 'data before welcome'); return }
    if (countRecords(msg) < 0) {
      this.stats.rxMalformed++
      log.limited('warn', 'uplink_malformed_batch', { url, bytes: msg.length, reason: 'a record runs past the end of the message' })
      return
    }
    this.stats.rxMessages++
    this.stats.rxBytes += msg.length
    this.onBatch(msg)
  }

  /** The first text message: the welcome, which makes the uplink up; anything else closes it. */
  private receiveWelcome (ws: UplinkSocket, url: string, text: string, welcomeTimer: NodeJS.Timeout): void {
    let welcome: Welcome
    try {
      welcome = this.welcome = parseWelcome(text)
    } catch (err) {
      log.warn('bad_welcome', { url, error: (err as Error).message })
      ws.close(CLOSE_PROTOCOL_ERROR, 'bad welcome')
      return
    }
    clearTimeout(welcomeTimer)
    this.state = 'up'
    this.attempt = 0
    this.refused = 0
    this.stats.connects++
    if (welcome.resumed === true) this.stats.resumes++
    this.resumeToken = welcome.resume
    this.resumeUrl = url
    this.startWatchdog(ws, welcome.pingInterval)
    log.info(welcome.resumed === true ? 'uplink_resumed' : 'uplink_connected', {
      url, port: welcome.port, name: welcome.name, network: welcome.network,
      vlan: JSON.stringify(welcome.vlan), max_frame_size: welcome.maxFrameSize,
      offload: welcome.capabilities.includes(CAP_OFFLOAD),
      path: this.path.path, ...(this.path.fallback !== undefined ? { fallback: this.path.fallback } : {})
    })
    this.emit('up', welcome)
  }

  /** The connection ended: down (and why, once), then the next attempt, at the next switch if this one refused or drains. */
  private closed (ws: UplinkSocket, url: string, code: number, reason: string): void {
    clearInterval(this.watchdog)
    // No uplink, no round trip: the gauge disappears rather than show a stale value.
    this.stats.rttSeconds = -1
    this.pingSentAt = -1
    if (this.ws === ws) this.ws = undefined
    const wasUp = this.state === 'up'
    if (this.state === 'closed') return
    this.state = 'down'
    if (wasUp) {
      this.stats.disconnects++
      log.warn('uplink_lost', { url, code, reason, hint: closeHint(code) })
      this.emit('down', code, reason)
    } else {
      this.noteRefusal(url, code, reason)
    }
    // The switch went away on purpose (shutting down, draining) or never answered: try the next one, if any.
    if (!wasUp || code === 1001 || code === CLOSE_DRAINING) this.urlIndex++
    // A draining replica: reconnect now (through the balancer, another replica takes us), at most once per DRAIN_AGAIN_MIN s.
    const now = performance.now()
    if (reconnectAtOnce(code, wasUp, (now - this.atOnceAt) / 1000)) {
      this.atOnceAt = now
      log.info('uplink_retry', { url: this.url, attempt: 0, delay_seconds: 0, reason: 'draining' })
      this.retryTimer = setTimeout(() => { if (this.state !== 'closed') this.connect() }, 0)
      return
    }
    this.scheduleReconnect()
  }

  private startWatchdog (ws: UplinkSocket, pingInterval: number): void {
    this.heard = true
    clearInterval(this.watchdog)
    // Checked every interval; two silent checks in a row (2 intervals + slack) mean a dead switch.
    let silent = 0
    this.pingSentAt = -1
    this.watchdog = setInterval(() => {
      // Our own ping measures the round trip through the switch's event loop.
      if (this.pingSentAt < 0) { this.pingSentAt = performance.now(); ws.ping() }
      if (this.heard) { this.heard = false; silent = 0; return }
      if (++silent >= 2) {
        log.warn('uplink_dead', { url: this.url, silent_seconds: silent * (pingInterval + 1) })
        ws.close(CLOSE_DEAD_PEER, 'no ping from switch')
        ws.terminate()
      }
    }, (pingInterval + 1) * 1000)
  }

  /**
   * An attempt that ended before the welcome: a close from switchd is said
   * with its reason (an error said itself already), and a refusal counted;
   * the REFUSALS_BEFORE_SLOW-th in a row is said once more, at error.
   */
  private noteRefusal (url: string, code: number, reason: string): void {
    // 1005/1006: no close frame, so no word from switchd (the error, if any, was logged).
    const fromSwitch = code !== 1005 && code !== 1006
    if (fromSwitch && this.refusal === undefined) log.limited('warn', 'uplink_closed', { url, code, reason, hint: closeHint(code) })
    const refusal = this.refusal ?? (fromSwitch ? refusalOfClose(code, reason) : undefined)
    this.refusal = undefined
    if (refusal === undefined) return
    if (++this.refused !== REFUSALS_BEFORE_SLOW) return
    const min = this.opts.refusedMin ?? REFUSED_MIN
    const max = Math.max(this.opts.reconnectMax ?? 5, this.opts.refusedMax ?? REFUSED_MAX)
    log.error('uplink_refused', {
      url, attempts: this.refused, kind: refusal.kind, hint: refusal.message,
      retry: `every ${min} to ${max} s until it is fixed (restart to retry at once)`
    })
  }

  private scheduleReconnect (): void {
    const min = this.opts.reconnectMin ?? 0.25
    const max = this.opts.reconnectMax ?? 5
    const delay = reconnectDelay(this.attempt, this.refused, min, max, Math.random(), this.opts.refusedMin, this.opts.refusedMax)
    this.attempt++
    log.limited('info', 'uplink_retry', { url: this.url, attempt: this.attempt, delay_seconds: Math.round(delay * 1000) / 1000, refused_in_a_row: this.refused })
    this.retryTimer = setTimeout(() => { if (this.state !== 'closed') this.connect() }, delay * 1000)
  }
}
