/** Plain-text tables for switchctl: left-aligned columns, numbers right-aligned. */

export function table (headers: string[], rows: Array<Array<string | number>>): string {
  const cells = rows.map((r) => r.map((c) => String(c)))
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)))
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'))
  const line = (r: string[]): string => r.map((c, i) => numeric[i] === true ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number)).join('  ').trimEnd()
  return [line(headers), ...cells.map(line)].join('\n') + '\n'
}

/** The API's JSON with --json, else what `render` makes of it. */
export function print (ctx: { json: boolean }, data: unknown, render: () => string): void {
  process.stdout.write(ctx.json ? JSON.stringify(data, null, 2) + '\n' : render())
}
