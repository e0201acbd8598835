/** Numbers as the console writes them: with their units, in a few digits. No DOM here (unit-tested in Node). */

/** 1234567 -> "1.23 M": a count with an SI prefix and no unit (say the unit beside it). */
export function si (n: number): string {
  const [v, prefix] = scaled(n)
  return prefix === '' ? v : `${v} ${prefix}`
}

/** n as a short number and its SI prefix: 1234567 -> ["1.23", "M"]. */
function scaled (n: number): [string, string] {
  if (!Number.isFinite(n)) return ['?', '']
  if (n < 1000) return [n < 10 && n % 1 !== 0 ? n.toFixed(1) : String(Math.round(n)), '']
  const units = ['k', 'M', 'G', 'T', 'P']
  let i = -1
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++ }
  return [n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0), units[i] as string]
}

/** A number with its unit and an SI prefix: (1234, 'frames/s') -> "1.23 kframes/s" reads badly, so the prefix stands apart: "1.23 k frames/s". */
export function count (n: number, unit: string): string {
  const [v, prefix] = scaled(n)
  return prefix === '' ? `${v} ${unit}` : `${v} ${prefix} ${unit}`
}

/** Bytes in decimal units (as ip -s and iperf3 -f print them): 1500 -> "1.50 kB", 12 -> "12 B". */
export function bytes (n: number): string {
  const [v, prefix] = scaled(n)
  return `${v} ${prefix}B`
}

/** A byte rate as bits per second (the unit links, conditions and iperf3 use): 125000 B/s -> "1.00 Mbit/s". */
export function bitRate (bytesPerSecond: number): string {
  const [v, prefix] = scaled(bytesPerSecond * 8)
  return `${v} ${prefix}bit/s`
}

/** Seconds as "12 s", "3 min 5 s", "2 h 10 min", "4 d 2 h". */
export function duration (seconds: number): string {
  const s = Math.max(0, Math.round(seconds))
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 > 0 ? ` ${s % 60} s` : ''}`
  if (s < 86400) return `${Math.floor(s / 3600)} h${Math.floor(s / 60) % 60 > 0 ? ` ${Math.floor(s / 60) % 60} min` : ''}`
  return `${Math.floor(s / 86400)} d${Math.floor(s / 3600) % 24 > 0 ? ` ${Math.floor(s / 3600) % 24} h` : ''}`
}

/** The local time of day of an epoch time in ms, HH:MM:SS. */
export function clock (ms: number): string {
  const d = new Date(ms)
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((x) => String(x).padStart(2, '0')).join(':')
}

/** The smallest of 1, 2, 5, 10, 20, 50, … at or above v (at least 1: an idle network still has an axis). */
export function niceCeiling (v: number): number {
  if (!(v > 1)) return 1
  const p = 10 ** Math.floor(Math.log10(v))
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p
  return 10 * p
}
