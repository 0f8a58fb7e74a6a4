// What a tool tells its caller when it cannot do what was asked: one sentence that names
// the object and the field, never a stack trace. A tool throws ToolError; the server turns
// it (and anything else thrown) into an `isError` result and keeps serving.
import { statusCode } from "../kopf/errors.ts";

/** A failure the caller can act on: what was wrong, where. */
export class ToolError extends Error {
  /** What a program reads: the object, the field and the message, one entry per problem. */
  readonly problems: Problem[];
  constructor(message: string, problems: Problem[] = []) {
    super(message);
    this.name = "ToolError";
    this.problems = problems;
  }
}

/** One problem with an input: `object` as in `FallbackPolicy shop/products`, `field` a path such as spec.retry.attempts. */
export type Problem = { object?: string; field?: string; message: string };

/**
 * The one line a caller sees for any thrown value. API errors keep the API server's own
 * words (which name the object and, for a Forbidden, the user and verb); anything that is
 * not ours is reported by its message only.
 */
export function messageOf(error: unknown): string {
  if (error instanceof ToolError) return error.message;
  const code = statusCode(error);
  if (code !== undefined) {
    const body = (error as { body?: unknown }).body as { message?: unknown; reason?: unknown } | undefined;
    const reason = typeof body?.reason === "string" ? body.reason : undefined;
    const text = typeof body?.message === "string" ? body.message : `HTTP ${code}`;
    return `${reason ?? httpReason(code)} (${code}): ${text}`;
  }
  if (error instanceof Error) {
    const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
    const detail = cause && typeof cause.code === "string" ? ` (${cause.code})` : "";
    if (error.name === "TimeoutError" || error.name === "AbortError")
      return `the API server did not answer in time${detail}`;
    return `${firstLine(error.message)}${detail}`;
  }
  return firstLine(String(error));
}

/** An API error about one object, said as a problem with that object. */
export function apiError(object: string, error: unknown): ToolError {
  return new ToolError(`${object}: ${messageOf(error)}`, [{ object, message: messageOf(error) }]);
}

const firstLine = (text: string) => text.split("\n")[0]!.slice(0, 2000);

function httpReason(code: number): string {
  switch (code) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 409:
      return "Conflict";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    default:
      return code >= 500 ? "ServerError" : "Error";
  }
}
