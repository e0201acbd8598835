/** Poll `check` every 10 ms for at most `ms`: whether it came true (a retry loop decides what to do next). */
export async function poll (check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return true
}
