// Envoy as a pod would run it: on the bootstrap `fallbackctl bootstrap` prints, which gets
// everything else from the operator over xDS; its log in a file, ready once the admin
// interface's /ready says so (Envoy has its first config from the operator).
import { execFile } from "node:child_process";
import { ENVOY_BIN, waitForEnvoyReady } from "../../test/support/envoy.ts";
import { fallbackctlBin } from "../../test/support/paths.ts";
import { startLogged, type Managed } from "./processes.ts";

/** `fallbackctl bootstrap ARGS`: the bootstrap YAML it prints; throws with its stderr. */
export function fallbackctlBootstrap(args: string[]): Promise<string> {
  return new Promise((done, fail) => {
    execFile(process.execPath, [fallbackctlBin, "bootstrap", ...args], { timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) fail(new Error(`fallbackctl bootstrap: ${stderr.trim() || error.message}`));
      else done(stdout);
    });
  });
}

export type DemoEnvoy = Managed & {
  readonly adminUrl: string;
  /** Envoy's arguments, for showing. */ readonly args: string[];
};

export async function startDemoEnvoy(options: {
  bootstrap: string;
  adminPort: number;
  logFile: string;
  readyTimeoutMs?: number;
}): Promise<DemoEnvoy> {
  const args = [
    "-c",
    options.bootstrap,
    // Several Envoys may run on one machine (tests, benchmarks): no shared memory, own base id.
    "--disable-hot-restart",
    "--base-id",
    String(20_000 + (process.pid % 10_000)),
    "--concurrency",
    "2",
    "--log-level",
    "warn",
  ];
  const envoy = startLogged("envoy", ENVOY_BIN, args, options.logFile);
  const adminUrl = `http://127.0.0.1:${options.adminPort}`;
  await waitForEnvoyReady({
    adminUrl,
    timeoutMs: options.readyTimeoutMs,
    exited: () => (envoy.running() ? undefined : envoy.exitInfo()),
    stop: () => envoy.stop(),
    details: () => `; see ${options.logFile}`,
  });
  return Object.assign(envoy, { adminUrl, args });
}
