/**
 * The C++ tests' build (fuzz/*_test.cc and the like, with the system
 * compiler from scripts/install-deps.sh): one place for the flags every build
 * shares and for the failure that names what did not build.
 */
import { strict as assert } from 'node:assert'
import { spawnSync } from 'node:child_process'
import * as path from 'node:path'

export const ROOT = path.join(__dirname, '..', '..')

/** What every C++ test is built with; a caller adds sanitizers, defines, sources and the output. */
export const CXX_FLAGS = ['-std=c++17', '-Wall', '-Wextra', '-Werror', '-O1', '-g']

/** g++ with `args` in the project's root (at most 240 s); asserts it built, naming `what`. */
export function gxx (args: string[], what: string): void {
  const build = spawnSync('g++', args, { cwd: ROOT, encoding: 'utf8', timeout: 240_000 })
  assert.equal(build.status, 0, `${what} did not build (g++ from scripts/install-deps.sh):\n${build.stderr}`)
}
