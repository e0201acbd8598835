/** Run switchctl from source in a child process (tests only). */
import { spawn } from 'node:child_process'
import * as path from 'node:path'

const ROOT = path.join(__dirname, '..', '..')

export interface CtlResult { code: number, stdout: Buffer, stderr: string }

/** `timeoutMs` guards against a hang only: node and tsx take seconds to start on a loaded machine. */
export function switchctl (args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CtlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-r', 'tsx/cjs', '-e', "require('./src/ctl/main').main(process.argv.slice(1)).then((c) => { process.exitCode = c })", '--', ...args], {
      cwd: ROOT,
      // No lab's state file unless a test gives it one: a lab running on the machine must not answer the tests.
      env: { ...process.env, SWITCHCTL_URL: '', SWITCHCTL_TOKEN: '', TAPSWITCH_LAB_STATE_DIR: path.join(ROOT, 'test', 'no-such-lab-state'), ...env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    const out: Buffer[] = []
    let err = ''
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => { err += d.toString() })
    const t = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`switchctl ${args.join(' ')} timed out`)) }, timeoutMs)
    child.on('close', (code) => { clearTimeout(t); resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr: err }) })
  })
}
