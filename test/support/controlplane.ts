// A real kube-apiserver (with embedded etcd) for tests, benchmarks and the demo: the
// binary built from test/controlplane, started on a free port with a folder of its own,
// so several runs (and `make cluster-up`) can share one machine.
//
// What it is not: there is no kube-controller-manager, scheduler or kubelet. Namespaces
// get no `default` ServiceAccount, deleted namespaces stay Terminating, ownerReferences
// are not garbage-collected, and Pods never run. Create what a test needs explicitly.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { request } from "node:https";
import { join, resolve } from "node:path";
import { parse } from "yaml";
import { repoRoot } from "./paths.ts";
import { until } from "./poll.ts";
import { freePort } from "./ports.ts";
import { exitOf, stopChild } from "./processes.ts";

export const controlPlaneBinary = join(repoRoot, ".local/bin/controlplane");

export interface ControlPlaneOptions {
  /** State folder: etcd data, credentials, log and (by default) the kubeconfig. */
  dir: string;
  /** Secure port on 127.0.0.1; a free one is picked when absent. */
  port?: number;
  /** Where the admin kubeconfig is written; default `<dir>/kubeconfig`. */
  kubeconfigPath?: string;
  /** How long to wait for /readyz; default 60 s. */
  readyTimeoutMs?: number;
  /** kube-apiserver log verbosity (--v); default 0. */
  verbosity?: number;
}

export interface ControlPlane {
  readonly kubeconfigPath: string;
  readonly port: number;
  /** https://127.0.0.1:<port> */
  readonly server: string;
  readonly dir: string;
  /** stdout and stderr of the process, appended across restarts. */
  readonly logPath: string;
  /** pid of the running process; undefined while stopped. */
  readonly pid: number | undefined;
  /** Milliseconds from spawn to the first ok from /readyz, for the latest start. */
  readonly startupMs: number;
  /** SIGTERM, then SIGKILL after `timeoutMs` (default 30 s); resolves once it exited. Idempotent. */
  stop(timeoutMs?: number): Promise<void>;
  /** stop(), then start again on the same folder and port (same data, same kubeconfig). */
  restart(): Promise<void>;
}

/** Starts a control plane and resolves once /readyz answers ok. */
export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  if (!existsSync(controlPlaneBinary)) {
    throw new Error(`${controlPlaneBinary} is missing; run make setup (scripts/setup.sh)`);
  }
  const dir = resolve(options.dir);
  mkdirSync(dir, { recursive: true });
  const kubeconfigPath = resolve(options.kubeconfigPath ?? join(dir, "kubeconfig"));
  const logPath = join(dir, "controlplane.log");
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
  const verbosity = options.verbosity ?? 0;

  let port = options.port ?? (await freePort());
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let startupMs = 0;

  const launch = async (): Promise<void> => {
    const started = performance.now();
    const log = openSync(logPath, "a");
    const logStart = fstatSync(log).size;
    let proc: ChildProcess;
    try {
      proc = spawn(
        controlPlaneBinary,
        [
          `--dir=${dir}`,
          `--port=${port}`,
          `--kubeconfig=${kubeconfigPath}`,
          `--v=${verbosity}`,
          // stdin is a pipe we hold: if this process dies, even by SIGKILL, the pipe
          // closes and the control plane shuts itself down instead of lingering.
          "--exit-on-stdin-eof",
        ],
        { stdio: ["pipe", log, log] },
      );
    } finally {
      closeSync(log);
    }
    // Never let the pipe keep Node's event loop alive, nor a write error crash it.
    proc.stdin?.on("error", () => {});
    (proc.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    proc.unref();
    let exitInfo: string | undefined;
    exited = exitOf(proc).then((how) => void (exitInfo = how));
    child = proc;
    try {
      await waitReady(kubeconfigPath, port, readyTimeoutMs, () => exitInfo);
    } catch (err) {
      await stopProcess(5_000);
      const log = tail(logPath, logStart, 30);
      const cause = /address already in use/.test(log) ? " (address already in use)" : "";
      throw new Error(`${(err as Error).message}${cause}\n--- last lines of ${logPath} ---\n${log}`);
    }
    startupMs = Math.round(performance.now() - started);
  };

  const stopProcess = async (timeoutMs: number): Promise<void> => {
    if (!child) return;
    await stopChild(child, { killAfterMs: timeoutMs });
    await exited;
    child = undefined;
  };

  // A port picked here may be taken by someone else before the server binds it: retry
  // with a fresh one, but only when the caller did not ask for a port.
  for (let attempt = 1; ; attempt++) {
    try {
      await launch();
      break;
    } catch (err) {
      if (options.port !== undefined || attempt >= 3 || !/\(address already in use\)/.test(String(err))) throw err;
      port = await freePort();
    }
  }

  return {
    kubeconfigPath,
    get port() {
      return port;
    },
    get server() {
      return `https://127.0.0.1:${port}`;
    },
    dir,
    logPath,
    get pid() {
      return child?.pid;
    },
    get startupMs() {
      return startupMs;
    },
    stop: (timeoutMs = 30_000) => stopProcess(timeoutMs),
    restart: async () => {
      await stopProcess(30_000);
      await launch();
    },
  };
}

interface ClientCredentials {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** The admin credentials from the kubeconfig the control plane wrote (undefined until then). */
function readCredentials(kubeconfigPath: string): ClientCredentials | undefined {
  try {
    const config = parse(readFileSync(kubeconfigPath, "utf8")) as {
      clusters?: { cluster?: Record<string, string> }[];
      users?: { user?: Record<string, string> }[];
    };
    const cluster = config.clusters?.[0]?.cluster;
    const user = config.users?.[0]?.user;
    const field = (o: Record<string, string> | undefined, k: string) => {
      const v = o?.[k];
      return v ? Buffer.from(v, "base64") : undefined;
    };
    const ca = field(cluster, "certificate-authority-data");
    const cert = field(user, "client-certificate-data");
    const key = field(user, "client-key-data");
    return ca && cert && key ? { ca, cert, key } : undefined;
  } catch {
    return undefined; // not written yet, or caught half-written
  }
}

/** GET /readyz with the admin client certificate; resolves to the HTTP status (0 on no answer). */
export function readyz(kubeconfigPath: string, port: number, timeoutMs = 2_000): Promise<number> {
  const creds = readCredentials(kubeconfigPath);
  if (!creds) return Promise.resolve(0);
  return new Promise((done) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path: "/readyz",
        method: "GET",
        ...creds,
        servername: "localhost",
        timeout: timeoutMs,
        agent: false,
      },
      (res) => {
        res.resume();
        res.once("end", () => done(res.statusCode ?? 0));
        res.once("error", () => done(0));
      },
    );
    req.once("timeout", () => req.destroy());
    req.once("error", () => done(0));
    req.end();
  });
}

async function waitReady(
  kubeconfigPath: string,
  port: number,
  timeoutMs: number,
  exitInfo: () => string | undefined,
): Promise<void> {
  // An exit ends the wait at once: the throw escapes the probe as its own message.
  let gone: string | undefined;
  await until(
    `/readyz on port ${port}`,
    async () => {
      gone = exitInfo();
      return gone !== undefined || (await readyz(kubeconfigPath, port)) === 200;
    },
    timeoutMs,
    100,
  );
  if (gone) throw new Error(`control plane exited (${gone}) before /readyz answered`);
}

/** The last `lines` lines of what was written to `path` from byte `from` on. */
function tail(path: string, from: number, lines: number): string {
  try {
    return readFileSync(path).subarray(from).toString("utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}
