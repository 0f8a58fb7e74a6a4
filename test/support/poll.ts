// Waiting for something outside the process (a server, a controller, Envoy) to get where a
// test, a benchmark or the demo needs it: the one polling loop they all use.

export const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

/**
 * Calls `probe` every `everyMs` until it returns something other than undefined or false,
 * and resolves with that. A throw counts as "not yet"; the last one is in the timeout's
 * message, which usually says why.
 */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  everyMs = 50,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value as T;
    } catch (error) {
      last = error;
    }
    if (performance.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await sleep(everyMs);
  }
}
