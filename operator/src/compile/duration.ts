// Durations as the API writes them (250ms, 10s, 1m30s) to milliseconds and to Envoy's form.

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

// Policies mostly share a handful of durations (their defaults): each is parsed and
// written once.
const msOf = new Map<string, number>();
const envoyOf = new Map<number, string>();
const REMEMBER = 1000;

export function toMs(duration: string): number {
  let ms = msOf.get(duration);
  if (ms === undefined) {
    ms = parse(duration);
    if (msOf.size < REMEMBER) msOf.set(duration, ms);
  }
  return ms;
}

function parse(duration: string): number {
  let total = 0;
  for (const [, amount, unit] of duration.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g)) {
    total += Number(amount) * UNIT_MS[unit!]!;
  }
  return total;
}

/** Envoy reads protobuf Durations as seconds with a fraction: 0.25s. */
export function envoyDuration(ms: number): string {
  let text = envoyOf.get(ms);
  if (text === undefined) {
    text = `${Number((ms / 1000).toFixed(6))}s`;
    if (envoyOf.size < REMEMBER) envoyOf.set(ms, text);
  }
  return text;
}
