// The Node.js flags each bin runs with, in one place. A bin calls runWithNodeFlags before it
// loads anything else, so `node operator/bin/…`, `npx fallbackctl`, the image's entrypoint,
// the tests, the benchmarks and the demo all get the same flags without repeating them.

/**
 * Node's defaults size V8 for a machine, not for a controller that idles between bursts: it
 * grows the young generation to 64 MB per half and the old one by up to 4x at a time, keeps
 * what it grew, and runs 4 worker threads, each with its own malloc arena. Small halves,
 * growth by 20 % at a time and 2 workers (a pod seldom has more cores) keep the operator's
 * memory close to what it holds, at the same latency (docs/benchmarks.md, "Operator"). The
 * heap has no cap, as a larger install needs more.
 */
export const OPERATOR_NODE_FLAGS: readonly string[] = [
  "--max-semi-space-size=4",
  "--heap-growing-percent=20",
  "--v8-pool-size=2",
];

/** A smaller young generation keeps a large render's peak RSS lower at no cost in time (docs/benchmarks.md, "Compile"). */
export const FALLBACKCTL_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=16"];

/** `--max-semi-space-size=4` -> `--max-semi-space-size`; V8 takes `_` for `-` too. */
const flagName = (flag: string) => flag.split("=", 1)[0]!.replaceAll("_", "-");

/**
 * The flags of `wanted` whose name this process was not started with, on its command line or
 * in NODE_OPTIONS: a value given there is the caller's choice.
 */
export function missingNodeFlags(
  wanted: readonly string[],
  execArgv: readonly string[] = process.execArgv,
  nodeOptions = process.env.NODE_OPTIONS ?? "",
): string[] {
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/).filter(Boolean)].map(flagName));
  return wanted.filter((flag) => !given.has(flagName(flag)));
}

/**
 * Replaces this process with `node FLAGS <its own flags> <script> <args>` when it lacks any
 * of `flags`. V8 reads its sizing flags at start-up only, hence a new image rather than
 * v8.setFlagsFromString. execve keeps the pid, stdio, environment and the parent's signals,
 * so a pipe, an exit code or a SIGTERM reaches the relaunched program as it would the first.
 * A flag already given by name keeps its value, and the relaunched process has them all, so
 * it goes on instead of relaunching again. Where there is no execve (Windows)
 * the program runs with Node's defaults: the flags tune memory, nothing depends on them.
 */
export function runWithNodeFlags(flags: readonly string[]): void {
  const missing = missingNodeFlags(flags);
  if (missing.length === 0 || typeof process.execve !== "function") return;
  const [node, script, ...args] = process.argv;
  process.execve(
    process.execPath,
    [node ?? process.execPath, ...missing, ...process.execArgv, script!, ...args],
    process.env,
  );
}
