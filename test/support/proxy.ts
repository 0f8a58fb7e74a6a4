// A real Envoy on the bootstrap `fallbackctl bootstrap` prints: the way a user runs one
// against the operator's xDS server.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./paths.ts";
import { freePort } from "./ports.ts";
import { startEnvoy, type Envoy } from "./envoy.ts";

const fallbackctl = join(repoRoot, "operator/bin/fallbackctl.ts");

export type Proxy = Envoy & { url: string; listen: number; nodeId: string };

export type ProxyOptions = {
  dir: string;
  xdsServers: string[];
  nodeId: string;
  sotw?: boolean;
  /** Where this Envoy listens; default a free port on 127.0.0.1. */
  listen?: number;
  /** More fallbackctl bootstrap flags (TLS). */
  args?: string[];
  readyTimeoutMs?: number;
  /** See EnvoyOptions.waitFor: "admin" for an Envoy expected to get no config. */
  waitFor?: "ready" | "admin";
};

/** Prints the bootstrap with fallbackctl, writes it, and starts Envoy on it. */
export async function startProxy(options: ProxyOptions): Promise<Proxy> {
  const listen = options.listen ?? (await freePort());
  const admin = { address: "127.0.0.1", port: await freePort() };
  const args = [
    "bootstrap",
    ...options.xdsServers.flatMap((s) => ["--xds-server", s]),
    "--listen",
    `127.0.0.1:${listen}`,
    "--admin",
    `${admin.address}:${admin.port}`,
    "--node-id",
    options.nodeId,
    ...(options.sotw ? ["--sotw"] : []),
    ...(options.args ?? []),
  ];
  const run = spawnSync(process.execPath, [fallbackctl, ...args], { encoding: "utf8" });
  if (run.status !== 0) throw new Error(`fallbackctl ${args.join(" ")}: ${run.stderr}`);
  const file = join(options.dir, `${options.nodeId}.yaml`);
  writeFileSync(file, run.stdout);
  const envoy = await startEnvoy({
    config: file,
    admin,
    drainTimeS: 1,
    ...(options.readyTimeoutMs ? { readyTimeoutMs: options.readyTimeoutMs } : {}),
    ...(options.waitFor ? { waitFor: options.waitFor } : {}),
  });
  return Object.assign(envoy, { url: `http://127.0.0.1:${listen}/`, listen, nodeId: options.nodeId });
}

/** The dynamic clusters of an Envoy's config dump: active and warming. */
export function clustersOf(dump: any): { active: any[]; warming: any[] } {
  const clusters = dump.configs.find((c: any) => c["@type"].endsWith(".ClustersConfigDump"));
  return {
    active: (clusters.dynamic_active_clusters ?? []).map((c: any) => c.cluster),
    warming: (clusters.dynamic_warming_clusters ?? []).map((c: any) => c.cluster),
  };
}

/** A virtual host's route in an Envoy's config dump (in whichever route configuration holds it). */
export function routeOf(dump: any, virtualHost: string): any {
  const routes = dump.configs.find((c: any) => c["@type"].endsWith(".RoutesConfigDump"));
  for (const { route_config: config } of routes?.dynamic_route_configs ?? []) {
    const host = config?.virtual_hosts?.find((h: any) => h.name === virtualHost);
    if (host) return host.routes[0].route;
  }
  return undefined;
}
