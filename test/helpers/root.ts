import { existsSync } from 'node:fs'

/**
 * e2e tests need root and /dev/net/tun. Without them they skip on a
 * developer's machine, but fail under CI=true: CI has both, so a skip there
 * would hide a broken environment.
 */
export function requireRoot (ctx: Mocha.Context): void {
  const missing = process.getuid?.() !== 0 ? 'root' : !existsSync('/dev/net/tun') ? '/dev/net/tun' : undefined
  if (missing === undefined) return
  if (process.env.CI === 'true') throw new Error(`e2e tests need ${missing}, and CI must run them`)
  ctx.skip()
}
