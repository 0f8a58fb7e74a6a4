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

/**
 * glibc's allocator serves a block of 128 KiB or more with its own mapping, returned to the
 * kernel when freed, but after the first such free it raises that threshold to the freed
 * block's size (up to 32 MiB): from then on an xDS response or a stats report is carved out
 * of the heap, and what it leaves free there stays in the process's RSS. Fixing the threshold
 * at its initial value keeps it from rising: ~25–40 MB less RSS with an Envoy synced and
 * reporting at 10,000 policies (docs/benchmarks.md, "xDS"). A value set by the caller stays;
 * other C libraries ignore the variable.
 */
export const OPERATOR_ENVIRONMENT: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: "131072" };

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

/** The variables of `wanted` that this process's environment does not set. */
export function missingEnvironment(
  wanted: Readonly<Record<string, string>>,
  env: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  return Object.fromEntries(Object.entries(wanted).filter(([name]) => env[name] === undefined));
}

/**
 * Replaces this process with `node FLAGS <its own flags> <script> <args>` when it lacks any
 * of `flags` or of the variables of `environment` (read by the C library at start-up, too). V8 reads its sizing flags at start-up only, hence a new image rather than
 * v8.setFlagsFromString. execve keeps the pid, stdio, environment and the parent's signals,
 * so a pipe, an exit code or a SIGTERM reaches the relaunched program as it would the first.
 * A flag given by name, or a variable set, keeps its value, and the relaunched process has them all, so
 * it goes on instead of relaunching again. Where there is no execve (Windows)
 * the program runs with Node's defaults: the flags tune memory, nothing depends on them.
 */
export function runWithNodeFlags(flags: readonly string[], environment: Readonly<Record<string, string>> = {}): void {
  const missing = missingNodeFlags(flags);
  const unset = missingEnvironment(environment);
  if ((missing.length === 0 && Object.keys(unset).length === 0) || typeof process.execve !== "function") return;
  const [node, script, ...args] = process.argv;
  process.execve(process.execPath, [node ?? process.execPath, ...missing, ...process.execArgv, script!, ...args], {
    ...process.env,
    ...unset,
  });
}
