/**
 * The other end of the wake-up measurement (wakeup.ts): a TCP echo server on
 * 127.0.0.1 with Nagle off. Prints `{"port":N}` once listening; exits on
 * SIGTERM.
 */

import * as net from 'node:net'

export function main (): void {
  const server = net.createServer((c) => {
    c.setNoDelay(true)
    c.on('data', (d) => { c.write(d) })
    c.on('error', () => { c.destroy() })
  })
  server.listen(0, '127.0.0.1', () => { process.stdout.write(JSON.stringify({ port: (server.address() as net.AddressInfo).port }) + '\n') })
  process.on('SIGTERM', () => { process.exit(0) })
}

if (require.main === module) main()
