// Envoy as a pod would run it: `envoy -c <ConfigMap mount>/bootstrap.yaml`, with its log in
// a file, ready once the admin interface's /ready says so.
import { ENVOY_BIN, waitForEnvoyReady } from "../../test/e2e/harness/envoy.ts";
import { startLogged, type Managed } from "./processes.ts";

export type DemoEnvoy = Managed & { readonly adminUrl: string };

export async function startDemoEnvoy(options: { bootstrap: string; adminPort: number; logFile: string; readyTimeoutMs?: number }): Promise<DemoEnvoy> {
  const args = [
    "-c", options.bootstrap,
    // Several Envoys may run on one machine (tests, benchmarks): no shared memory, own base id.
    "--disable-hot-restart",
    "--base-id", String(20_000 + (process.pid % 10_000)),
    "--concurrency", "2",
    "--log-level", "warn",
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
  return Object.assign(envoy, { adminUrl });
}
