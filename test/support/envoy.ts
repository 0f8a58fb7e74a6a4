// The real Envoy, as `make setup` installs it into .local/bin: checking a bootstrap with it,
// and running it on a config file until its admin interface says it is ready, then reading
// its stats and config. Several Envoys can run at once: hot restart is disabled (so no
// shared memory, hence no base-id clash) and each gets a base id of its own anyway.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot } from "./paths.ts";
import { until } from "./poll.ts";
import { collectOutput, isRunning, stopChild } from "./processes.ts";

export const ENVOY_BIN = join(repoRoot, ".local/bin/envoy");
export const envoyAvailable = () => existsSync(ENVOY_BIN);

/** `envoy --mode validate` on a bootstrap; returns Envoy's complaint, or "" when it accepts it. */
export function envoyValidate(bootstrapYaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), "envoy-validate-"));
  const file = join(dir, "bootstrap.yaml");
  writeFileSync(file, bootstrapYaml);
  const run = spawnSync(ENVOY_BIN, ["--mode", "validate", "-c", file, "-l", "error", "--disable-hot-restart"], {
    encoding: "utf8",
  });
  return run.status === 0 ? "" : `${run.stdout}\n${run.stderr}`.trim();
}

export type EnvoyOptions = {
  /** The bootstrap file (`-c`). */
  config: string;
  /** Where the bootstrap puts the admin interface. */
  admin: { address: string; port: number };
  logLevel?: "trace" | "debug" | "info" | "warn" | "error";
  /** Worker threads; default 2 (the test machine has two cores). */
  concurrency?: number;
  /** `--drain-time-s`: how long a replaced listener drains; Envoy's default (600) when unset. */
  drainTimeS?: number;
  /** How long to wait for /ready. */
  readyTimeoutMs?: number;
  /**
   * What start waits for: "ready" (default: /ready answers 200, Envoy has its initial config
   * or gave up waiting for it) or "admin" (the admin interface answers at all: for an Envoy
   * that is expected to get no config, which would otherwise take its initial fetch timeouts).
   */
  waitFor?: "ready" | "admin";
};

export type Envoy = {
  readonly pid: number | undefined;
  readonly adminUrl: string;
  /** Everything Envoy printed so far. */
  log(): string;
  /** Counters and gauges, by full name (e.g. `cluster.shop/products/primary.upstream_rq_total`). */
  stats(filter?: string): Promise<Map<string, number>>;
  stat(name: string): Promise<number>;
  /** A cluster's hosts as Envoy has them (its admin /clusters), with their health as EDS gave it. */
  hosts(cluster: string): Promise<{ address: string; edsHealth: string }[]>;
  configDump(): Promise<any>;
  /** True while the process runs. */
  running(): boolean;
  stop(): Promise<void>;
};

let nextBaseId = 1000 + (process.pid % 1000) * 50;

export async function startEnvoy(options: EnvoyOptions): Promise<Envoy> {
  const adminHost = options.admin.address === "0.0.0.0" ? "127.0.0.1" : options.admin.address;
  const adminUrl = `http://${adminHost}:${options.admin.port}`;
  const args = [
    "-c",
    options.config,
    "--base-id",
    String(nextBaseId++),
    "--disable-hot-restart",
    "--concurrency",
    String(options.concurrency ?? 2),
    "--log-level",
    options.logLevel ?? "warn",
    ...(options.drainTimeS !== undefined ? ["--drain-time-s", String(options.drainTimeS)] : []),
  ];
  const proc: ChildProcess = spawn(ENVOY_BIN, args, { stdio: ["ignore", "pipe", "pipe"] });
  const log = collectOutput(proc);
  const running = () => isRunning(proc);

  const envoy: Envoy = {
    pid: proc.pid,
    adminUrl,
    log,
    running,
    async stats(filter) {
      const url = `${adminUrl}/stats?format=json${filter ? `&filter=${encodeURIComponent(filter)}` : ""}`;
      const res = await fetch(url);
      const body = (await res.json()) as { stats: Array<{ name?: string; value?: number }> };
      return new Map(
        body.stats.filter((s) => s.name !== undefined && typeof s.value === "number").map((s) => [s.name!, s.value!]),
      );
    },
    async stat(name) {
      const stats = await envoy.stats(`^${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);
      return stats.get(name) ?? 0;
    },
    async hosts(cluster) {
      const res = await fetch(`${adminUrl}/clusters?format=json`);
      const body = (await res.json()) as { cluster_statuses?: any[] };
      const status = body.cluster_statuses?.find((c) => c.name === cluster);
      return (status?.host_statuses ?? []).map((h: any) => ({
        address: `${h.address?.socket_address?.address}:${h.address?.socket_address?.port_value}`,
        edsHealth: h.health_status?.eds_health_status ?? "HEALTHY",
      }));
    },
    async configDump() {
      const res = await fetch(`${adminUrl}/config_dump`);
      return res.json();
    },
    stop: () => stopChild(proc),
  };

  await waitForEnvoyReady({
    adminUrl,
    ...(options.waitFor === "admin" ? { path: "/server_info" } : {}),
    timeoutMs: options.readyTimeoutMs,
    exited: () => (running() ? undefined : `code ${proc.exitCode}, signal ${proc.signalCode}`),
    stop: () => envoy.stop(),
    details: () => `\n${log()}`,
  });
  return envoy;
}

/**
 * Polls the admin interface's /ready until Envoy answers 200. Throws when the process
 * exits first, or (after stopping it) when `timeoutMs` passes; `details` is appended to
 * either message (the log, or where to find it).
 */
export async function waitForEnvoyReady(options: {
  adminUrl: string;
  /** What to poll until it answers 200; default /ready. */
  path?: string;
  timeoutMs?: number;
  /** Why the process is gone, or undefined while it runs. */
  exited: () => string | undefined;
  stop: () => Promise<void>;
  details: () => string;
}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  let gone: string | undefined;
  try {
    await until(
      "envoy",
      async () => {
        gone = options.exited();
        if (gone) return true;
        // A refused connection (not listening yet) throws, which is "not yet" too.
        return (
          (await fetch(`${options.adminUrl}${options.path ?? "/ready"}`, { signal: AbortSignal.timeout(2_000) }))
            .status === 200
        );
      },
      timeoutMs,
      100,
    );
  } catch {
    await options.stop();
    throw new Error(`envoy was not ready within ${timeoutMs} ms${options.details()}`);
  }
  if (gone) throw new Error(`envoy exited (${gone})${options.details()}`);
}
