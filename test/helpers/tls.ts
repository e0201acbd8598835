/** Throwaway TLS material for tests, made with the openssl CLI. */
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

export interface TestPki {
  dir: string
  ca: string
  cert: string
  key: string
  /** Same host, signed by the same CA, already expired. */
  expiredCert: string
  expiredKey: string
  /** A second valid certificate (for reload tests). */
  cert2: string
  key2: string
}

function openssl (args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'ignore', timeout: 20_000 })
}

/** A CA and server certificates for 127.0.0.1/localhost in a new temporary directory. */
export function makePki (): TestPki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-pki-'))
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=tapswitch-test-ca'], dir)
  fs.writeFileSync(path.join(dir, 'ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  const leaf = (name: string, days: string): void => {
    openssl(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=localhost'], dir)
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', days, '-extfile', 'ext'], dir)
  }
  leaf('server', '2')
  leaf('server2', '2')
  leaf('expired', '-1') // notAfter before notBefore: expired from the start
  const p = (f: string): string => path.join(dir, f)
  return { dir, ca: p('ca.pem'), cert: p('server.pem'), key: p('server.key'), expiredCert: p('expired.pem'), expiredKey: p('expired.key'), cert2: p('server2.pem'), key2: p('server2.key') }
}
