// How the framework reads errors coming back from the API: their status, and whether
// trying again can help.

/**
 * What the API server answered with a status other than 2xx: `code` is the HTTP status and
 * `body` the Status object it sent (its `message`, `reason` and `details`). The same fields
 * as client-node's ApiException, so code that reads either works with both.
 */
export class KubeApiError extends Error {
  readonly code: number;
  readonly body: unknown;
  readonly headers: Record<string, string>;

  constructor(code: number, message: string, body: unknown, headers: Record<string, string> = {}) {
    super(message);
    this.name = "KubeApiError";
    this.code = code;
    this.body = body;
    this.headers = headers;
  }
}

/**
 * HTTP status of an error from the API: `code` on KubeApiError (and on client-node's
 * ApiException), `statusCode` on a watch's ERROR event. Undefined for network errors.
 */
export function statusCode(err: unknown): number | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e.code === "number") return e.code;
  if (typeof e.statusCode === "number") return e.statusCode;
  return undefined;
}

export const isNotFound = (err: unknown): boolean => statusCode(err) === 404;
export const isConflict = (err: unknown): boolean => statusCode(err) === 409;
/** 410 Gone: the resourceVersion we asked for is compacted away; relist. */
export const isGone = (err: unknown): boolean => statusCode(err) === 410;

/**
 * Whether an API error is worth retrying: conflicts, throttling, server errors,
 * timeouts, and connection failures (an API server restarting refuses connections).
 */
export function isRetryable(err: unknown): boolean {
  const code = statusCode(err);
  if (code !== undefined) return code === 409 || code === 429 || code >= 500;
  return true; // no HTTP status at all: a network failure or a timeout
}

/** A one-line description of any thrown value, for logs. */
export function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = statusCode(err);
    const body = (err as { body?: { message?: unknown } }).body;
    // The Status message is what matters, with the code in front.
    if (code !== undefined && body && typeof body.message === "string") return `${code}: ${body.message}`;
    const cause = (err as { cause?: { code?: unknown } }).cause;
    const causeCode = cause && typeof cause.code === "string" ? ` (${cause.code})` : "";
    return `${err.message}${causeCode}`;
  }
  return String(err);
}
