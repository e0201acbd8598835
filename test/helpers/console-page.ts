/**
 * The web console in Debian's chromium, for the browser tier: launched by
 * playwright-core (which never downloads a browser) with no sandbox (root in
 * CI) and nothing that talks to the internet; every CSP refusal and page
 * error is collected, and a test that passes must end with none.
 *
 * One chromium process serves a file's tests (closeBrowser in its `after`):
 * each test gets a new context of it, as clean as a fresh profile (its own
 * cookies, storage and cache), for a fraction of a launch.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { until } from './net'
export { until }

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const ROOT = path.join(__dirname, '..', '..')
/** Screenshots: a temporary directory, or docs/img (which README and docs/CONSOLE.md show) with UPDATE_SCREENSHOTS=1. */
export const SHOTS = process.env.UPDATE_SCREENSHOTS === '1' ? path.join(ROOT, 'docs', 'img') : fs.mkdtempSync(path.join(os.tmpdir(), 'tapswitch-console-shots-'))
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']

/** Skip without chromium on a developer's machine, fail under CI=true; build the page if a developer runs one file alone. */
export function requireChromium (ctx: Mocha.Context): void {
  if (!fs.existsSync(CHROMIUM)) {
    if (process.env.CI === 'true') throw new Error(`no chromium at ${CHROMIUM}: apt-get install chromium (.ci/run does)`)
    ctx.skip()
  }
  if (!fs.existsSync(path.join(ROOT, 'dist', 'ui', 'console.js'))) execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build-ui.js')])
}

export interface ConsolePage {
  page: Page
  context: BrowserContext
  /** What the page's CSP refused, and uncaught errors in the page. */
  violations: string[]
  close: () => Promise<void>
}

let shared: Promise<Browser> | undefined

/** The chromium this file's tests share, launched by the first. */
async function sharedBrowser (): Promise<Browser> {
  shared ??= chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS })
  try {
    return await shared
  } catch (err) {
    shared = undefined
    throw err
  }
}

/** Close the shared chromium (a file's `after`): nothing is left running when mocha ends. */
export async function closeBrowser (): Promise<void> {
  const b = shared
  shared = undefined
  if (b !== undefined) await (await b.catch(() => undefined))?.close()
}

/** A page in a new context (a clean profile) of the shared chromium; close() ends the context. */
export async function openBrowser (): Promise<ConsolePage> {
  const context = await (await sharedBrowser()).newContext({ viewport: { width: 1280, height: 720 }, acceptDownloads: true })
  const page = await context.newPage()
  const violations: string[] = []
  page.on('console', (m) => { if (/Content Security Policy|Refused to/.test(m.text())) violations.push(m.text()) })
  page.on('pageerror', (err) => { violations.push(`page error: ${err.message}`) })
  return {
    page,
    context,
    violations,
    close: async () => { await context.close() }
  }
}

/** Log in with the admin token and wait for a port's row. */
export async function login (page: Page, base: string, token: string, port: string): Promise<void> {
  await page.goto(base + '/ui')
  await page.locator('#login').waitFor({ state: 'visible' })
  await page.fill('#token', token)
  await page.click('#login button[type=submit]')
  await page.locator(`#ports tr[data-port="${port}"]`).waitFor()
}

