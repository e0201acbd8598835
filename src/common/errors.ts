/**
 * One error class with stable codes (cf. ws `WS_ERR_*`, undici `UND_ERR_*`).
 * Callers and tests branch on `code`, never on the message.
 */

export const ERR_CONFIG = 'TSW_ERR_CONFIG'
export const ERR_PROTOCOL = 'TSW_ERR_PROTOCOL'
export const ERR_UPLINK_CLOSED = 'TSW_ERR_UPLINK_CLOSED'
export const ERR_TAP = 'TSW_ERR_TAP'
/** A frame spec (common/framespec.ts) that does not parse. */
export const ERR_FRAME_SPEC = 'TSW_ERR_FRAME_SPEC'
/** switchd's state (a gateway's lease file) cannot be used: unreadable, corrupt, or another switchd's. */
export const ERR_STATE = 'TSW_ERR_STATE'
/** A SwitchServer asked to listen() once close() was called: it listens once. */
export const ERR_CLOSED = 'TSW_ERR_CLOSED'
/** A command line that does not parse: an unknown option, a missing value (exit 2). */
export const ERR_USAGE = 'TSW_ERR_USAGE'
/**
 * The admin API was asked about a name that does not exist (a network, a port,
 * a VLAN, a static entry, a gateway): 404 with `{error, code, kind, name, known, suggestion?}`.
 */
export const ERR_NOT_FOUND = 'TSW_ERR_NOT_FOUND'
/** The admin API refuses an action on a name that exists but cannot take it (409). */
export const ERR_CONFLICT = 'TSW_ERR_CONFLICT'

export class TapswitchError extends Error {
  readonly code: string
  constructor (code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'TapswitchError'
    this.code = code
  }
}
