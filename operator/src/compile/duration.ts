// Durations as the API writes them (250ms, 10s, 1m30s) to milliseconds and to Envoy's form.

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function toMs(duration: string): number {
  let total = 0;
  for (const [, amount, unit] of duration.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g)) {
    total += Number(amount) * UNIT_MS[unit!]!;
  }
  return total;
}

/** Envoy reads protobuf Durations as seconds with a fraction: 0.25s. */
export const envoyDuration = (ms: number) => `${Number((ms / 1000).toFixed(6))}s`;
