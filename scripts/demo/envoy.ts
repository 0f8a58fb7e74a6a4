// Envoy as a pod would run it: `envoy -c <ConfigMap mount>/bootstrap.yaml`, with its log in
// a file, ready once the admin interface's /ready says so.
import { ENVOY_BIN } from "../../test/e2e/harness/envoy.ts";
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
  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (!envoy.running()) throw new Error(`envoy exited (${envoy.exitInfo()}); see ${options.logFile}`);
    try {
      const res = await fetch(`${adminUrl}/ready`, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await envoy.stop();
      throw new Error(`envoy was not ready within ${options.readyTimeoutMs ?? 60_000} ms; see ${options.logFile}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return Object.assign(envoy, { adminUrl });
}
