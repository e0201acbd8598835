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

export class TapswitchError extends Error {
  readonly code: string
  constructor (code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'TapswitchError'
    this.code = code
  }
}
