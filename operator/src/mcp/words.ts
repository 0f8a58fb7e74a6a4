// Small helpers for sentences: durations as a person writes them, lists, counts.

/** 0 ms, 25 ms, 1.5 s, 2 min, 1 h. */
export function ms(value: number): string {
  if (!Number.isFinite(value)) return "forever";
  if (value < 1000) return `${Math.round(value)} ms`;
  if (value < 60_000) return `${Math.round(value) / 1000} s`;
  if (value < 3_600_000) return `${round(value / 60_000)} min`;
  return `${round(value / 3_600_000)} h`;
}

const round = (n: number) => String(Math.round(n * 100) / 100);

/** "a", "a and b", "a, b and c". */
export function list(items: readonly string[], conjunction = "and"): string {
  if (items.length <= 1) return items[0] ?? "";
  return `${items.slice(0, -1).join(", ")} ${conjunction} ${items.at(-1)}`;
}

/** "1 try", "3 tries". */
export function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** "1st", "2nd", "3rd", "4th". */
export function ordinal(n: number): string {
  const tens = n % 100;
  if (tens >= 11 && tens <= 13) return `${n}th`;
  return `${n}${["th", "st", "nd", "rd"][n % 10] ?? "th"}`;
}
