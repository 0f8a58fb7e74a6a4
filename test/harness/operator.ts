// The real fallback-operator as a child process, for integration tests, benchmarks and the
// demo: started with a kubeconfig and a ConfigMap of its own, its JSON log kept in memory.
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { parse } from "yaml";
import { freePort, kubectl, repoRoot } from "./controlplane.ts";

export const operatorBin = join(repoRoot, "operator/bin/fallback-operator.ts");

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
    "--kubeconfig", options.kubeconfig,
    "--config-namespace", options.configNamespace,
    "--config-name", options.configName ?? "fallback-envoy",
    "--health-addr", `127.0.0.1:${health}`,
    "--metrics-addr", `127.0.0.1:${metrics}`,
    "--log-level", "debug",
    ...(options.watchNamespace ? ["--watch-namespace", options.watchNamespace] : []),
    ...(options.leaderElect ? ["--leader-elect"] : []),
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...options.env }, ...(options.cwd ? { cwd: options.cwd } : {}) });
  let output = "";
  child.stdout!.setEncoding("utf8").on("data", (s: string) => (output += s));
  child.stderr!.setEncoding("utf8").on("data", (s: string) => (output += s));
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  const stopWith = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  return {
    process: child,
    pid: child.pid!,
    healthUrl: `http://127.0.0.1:${health}`,
    metricsUrl: `http://127.0.0.1:${metrics}`,
    logs: () =>
      output
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    output: () => output,
    stop: () => stopWith("SIGTERM"),
    kill: async () => void (await stopWith("SIGKILL")),
    exited,
  };
}

/** Polls `probe` until it returns something other than undefined/false. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** kubectl that throws on failure and returns stdout. */
export async function kube(kubeconfig: string, args: string[], input?: string): Promise<string> {
  const r = await kubectl(kubeconfig, args, { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** kubectl get -o json, or undefined when not found. */
export async function getJson<T = any>(kubeconfig: string, args: string[]): Promise<T | undefined> {
  const r = await kubectl(kubeconfig, ["get", ...args, "-o", "json"]);
  if (r.code !== 0) {
    if (/NotFound|not found/.test(r.stderr)) return undefined;
    throw new Error(`kubectl get ${args.join(" ")}: ${r.stderr.trim()}`);
  }
  return JSON.parse(r.stdout) as T;
}

/** Applies objects (as YAML or JSON documents) with kubectl apply -f -. */
export const apply = (kubeconfig: string, objects: object[]) =>
  kube(kubeconfig, ["apply", "-f", "-"], objects.map((o) => JSON.stringify(o)).join("\n---\n"));

/** The condition of `type` in a policy's status. */
export const conditionOf = (policy: any, type: string) =>
  (policy?.status?.conditions ?? []).find((c: { type: string }) => c.type === type) as
    | { type: string; status: string; reason: string; message: string; observedGeneration?: number; lastTransitionTime: string }
    | undefined;

/** The ConfigMap's files, parsed. */
export const configFiles = (configMap: any): Record<string, any> =>
  Object.fromEntries(Object.entries<string>(configMap?.data ?? {}).map(([k, v]) => [k, parse(v)]));

/** A Prometheus text value: the first sample of `name` whose labels include `labels`. */
export async function metric(url: string, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
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
