// The real fallback-operator as a child process, for integration tests, benchmarks and the
// demo: started with a kubeconfig and a ConfigMap of its own, its JSON log kept in memory.
import { spawn, type ChildProcess } from "node:child_process";
import { parse } from "yaml";
import { operatorBin } from "./paths.ts";
import { freePort } from "./ports.ts";
import { collectOutput, isRunning } from "./processes.ts";

export type OperatorOptions = {
  kubeconfig: string;
  configNamespace: string;
  configName?: string;
  watchNamespace?: string;
  leaderElect?: boolean;
  /** More flags, e.g. ["--config-limit-bytes", "20000"]. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Its working folder (where, say, heap snapshots go). */
  cwd?: string;
};

export type RunningOperator = {
  process: ChildProcess;
  pid: number;
  healthUrl: string;
  metricsUrl: string;
  /** Every log line so far, parsed. */
  logs: () => Array<Record<string, unknown>>;
  /** The raw log text so far (stdout and stderr). */
  output: () => string;
  /** SIGTERM and wait for the exit; resolves with the exit code. */
  stop: () => Promise<number | null>;
  /** SIGKILL and wait. */
  kill: () => Promise<void>;
  exited: Promise<number | null>;
};

export async function startOperator(options: OperatorOptions): Promise<RunningOperator> {
  const [health, metrics] = [await freePort(), await freePort()];
  const args = [
    operatorBin,
    "--kubeconfig",
    options.kubeconfig,
    "--config-namespace",
    options.configNamespace,
    "--config-name",
    options.configName ?? "fallback-envoy",
    "--health-addr",
    `127.0.0.1:${health}`,
    "--metrics-addr",
    `127.0.0.1:${metrics}`,
    "--log-level",
    "debug",
    ...(options.watchNamespace ? ["--watch-namespace", options.watchNamespace] : []),
    ...(options.leaderElect ? ["--leader-elect"] : []),
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...options.env },
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  // All of it: benchmarks read the log from an offset on, which a cap would shift.
  const output = collectOutput(child, Infinity);
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  // No SIGKILL after a while: a graceful stop's exit code is what callers check.
  const stopWith = async (signal: NodeJS.Signals) => {
    if (isRunning(child)) child.kill(signal);
    return exited;
  };
  // Each line is parsed once: a benchmark polls the log every few milliseconds, and parsing
  // all of it each time would load the machine it is measuring.
  const parsed: Record<string, unknown>[] = [];
  let parsedUpTo = 0;
  const logs = () => {
    const text = output();
    const end = text.lastIndexOf("\n") + 1;
    if (end > parsedUpTo) {
      for (const line of text.slice(parsedUpTo, end).split("\n"))
        if (line.startsWith("{")) parsed.push(JSON.parse(line) as Record<string, unknown>);
      parsedUpTo = end;
    }
    return parsed.slice();
  };
  return {
    process: child,
    pid: child.pid!,
    healthUrl: `http://127.0.0.1:${health}`,
    metricsUrl: `http://127.0.0.1:${metrics}`,
    logs,
    output,
    stop: () => stopWith("SIGTERM"),
    kill: async () => void (await stopWith("SIGKILL")),
    exited,
  };
}

/** The condition of `type` in a policy's status. */
export const conditionOf = (policy: any, type: string) =>
  (policy?.status?.conditions ?? []).find((c: { type: string }) => c.type === type) as
    | {
        type: string;
        status: string;
        reason: string;
        message: string;
        observedGeneration?: number;
        lastTransitionTime: string;
      }
    | undefined;

/** The ConfigMap's files, parsed. */
export const configFiles = (configMap: any): Record<string, any> =>
  Object.fromEntries(Object.entries<string>(configMap?.data ?? {}).map(([k, v]) => [k, parse(v)]));

/** A Prometheus text value: the first sample of `name` whose labels include `labels`. */
export async function metric(
  url: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const text = await (await fetch(`${url}/metrics`)).text();
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:]+)(\{[^}]*\})? (.+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const l = m[2] ?? "";
    if (Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`))) return Number(m[3]);
  }
  return undefined;
}
