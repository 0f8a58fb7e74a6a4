// Structured JSON logs, one object per line, via pino.
//
// Every component takes a Logger and makes a child with its own fields (controller,
// namespace, name), so one grep on a field follows one object through the operator.

import { pino, type Logger, type DestinationStream } from "pino";

export type { Logger };

export interface LoggerOptions {
  /** trace | debug | info | warn | error | fatal | silent. Default: $LOG_LEVEL, else info. */
  level?: string;
  /** Written as `name` on every line. */
  name?: string;
  /** Where lines go; default stdout. Tests pass a stream they can read. */
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env["LOG_LEVEL"] ?? "info";
  return pino(
    {
      level,
      ...(options.name ? { name: options.name } : {}),
      // ISO timestamps read better than epoch milliseconds next to Kubernetes' own.
      timestamp: pino.stdTimeFunctions.isoTime,
      // "level":"info" instead of "level":30, as most log pipelines expect.
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination,
  );
}
