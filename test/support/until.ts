// Waits for a condition a test cannot be told about (a reload, a job's end, a log line): polls
// `probe` every 50 ms (or `everyMs`) until it returns a value other than undefined or false, or fails naming what
// did not happen (`what`, or a function of what was last seen). The timeout only bounds a failing
// test; it asserts nothing about speed. The one poll helper of test/ and bench/.
export async function until<T>(probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 5_000, what: string | (() => string) = 'condition', everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`${typeof what === 'string' ? what : what()} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
