// Failover benchmark: a primary that crashes (SIGKILL) and restarts over and over, under a
// steady 200 requests per second, behind
//   (a) the Envoy config this project generates for a FallbackPolicy with its defaults
//       (primary -> products-cache -> static 503), and
//   (b) a baseline Envoy config with Envoy's defaults: one plain cluster for the primary,
//       no retry policy, outlier detection with its default values, and
//   (c) the same baseline with the fallback added as priority-1 endpoints of that cluster
//       (Envoy's own priority failover, still no retries).
// Prints (and returns) a markdown table of requests, errors and latency, side by side.
//
//   node bench/failover.ts            # ~40 s on two cores
//   import { runFailoverBench } from "./failover.ts"   // from bench/run.ts
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../test/support/ports.ts";
import { spawnBackend, startBackend, type Backend, type ChildBackend } from "../test/support/backend.ts";
import { startEnvoy, type Envoy } from "../test/support/envoy.ts";
import { fallbackPolicy, service, startGateway } from "../test/support/gateway.ts";
import { sleep } from "../test/support/poll.ts";
import { startLoad, summarize, type Result } from "../test/support/load.ts";

export type FailoverBenchOptions = {
  /** Requests per second; default 200. */
  rate?: number;
  /** Length of each run, ms; default 15 s. */
  durationMs?: number;
  /** A crash every this many ms; default 2 s. */
  crashEveryMs?: number;
  /** How long the primary stays dead before it is started again, ms; default 1 s. */
  downMs?: number;
  /** Progress lines go here; default stderr. */
  log?: (line: string) => void;
};

type Row = {
  config: string;
  crashes: number;
  results: Result[];
};

const HOST = "products.shop:8080";

/** Runs both configurations one after the other and returns the markdown table. */
export async function runFailoverBench(options: FailoverBenchOptions = {}): Promise<string> {
  const o = {
    rate: 200,
    durationMs: 15_000,
    crashEveryMs: 2_000,
    downMs: 1_000,
    log: (l: string) => process.stderr.write(`${l}\n`),
    ...options,
  };
  const rows: Row[] = [];
  rows.push(await run("(a) generated (FallbackPolicy defaults)", o, generatedGateway));
  rows.push(await run("(b) baseline (Envoy defaults)", o, (primary) => baselineGateway(primary)));
  rows.push(await run("(c) baseline + fallback as priority 1", o, (primary, cache) => baselineGateway(primary, cache)));
  return table(rows, o);
}

type Started = { url: string; envoy: Envoy; stop(): Promise<void> };
type GatewayFactory = (primary: ChildBackend, cache: Backend) => Promise<Started>;

async function run(name: string, o: Required<FailoverBenchOptions>, gatewayFor: GatewayFactory): Promise<Row> {
  const primary = await spawnBackend({ name: "primary", host: "127.0.0.2" });
  const cache = await startBackend({ name: "cache", host: "127.0.0.3" });
  const gateway = await gatewayFor(primary, cache);
  try {
    // Warm up: connections open, first request served.
    const warm = startLoad({ url: gateway.url, host: HOST, rate: 20 });
    await warm.waitFor("the primary to answer", (r) => r.backend === "primary", { sinceMs: 0 });
    await warm.stop();

    o.log(
      `${name}: ${o.rate} req/s for ${o.durationMs / 1000}s, SIGKILL every ${o.crashEveryMs / 1000}s, down ${o.downMs / 1000}s each time`,
    );
    const load = startLoad({ url: gateway.url, host: HOST, rate: o.rate, maxDurationMs: o.durationMs + 1_000 });
    let crashes = 0;
    const started = performance.now();
    let next = started + o.crashEveryMs;
    while (next + o.downMs < started + o.durationMs) {
      await sleep(next - performance.now());
      await primary.kill();
      crashes++;
      await sleep(o.downMs);
      await primary.restart();
      next += o.crashEveryMs;
    }
    await sleep(started + o.durationMs - performance.now());
    const results = await load.stop();
    return { config: name, crashes, results };
  } finally {
    await gateway.stop();
    await primary.close();
    await cache.close();
  }
}

/** (a): the project's pipeline, with nothing but the required fields in the policy. */
const generatedGateway: GatewayFactory = async (primary, cache) => {
  const objects = [
    ...service("shop", "products", 8080, [primary]),
    ...service("shop", "products-cache", 8080, [cache]),
    fallbackPolicy("shop", "products", {
      targetRef: { name: "products", port: 8080 },
      fallbacks: [
        { service: { name: "products-cache", port: 8080 } },
        { staticResponse: { status: 503, body: '{"degraded":true}', headers: { "content-type": "application/json" } } },
      ],
    }),
  ];
  const gateway = await startGateway({ objects });
  return { url: gateway.url, envoy: gateway.envoy, stop: gateway.stop };
};

/**
 * (b): hand-written, Envoy's defaults: a plain cluster for the primary, no retries, default
 * outlier detection. (c): the same with `fallback` as the cluster's priority-1 endpoints.
 */
export async function baselineGateway(primary: Backend, fallback?: Backend): Promise<Started> {
  const listen = await freePort();
  const admin = await freePort();
  const hcm = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
  const bootstrap = {
    admin: { address: { socket_address: { address: "127.0.0.1", port_value: admin } } },
    static_resources: {
      listeners: [
        {
          name: "baseline",
          address: { socket_address: { address: "127.0.0.1", port_value: listen } },
          filter_chains: [
            {
              filters: [
                {
                  name: "envoy.filters.network.http_connection_manager",
                  typed_config: {
                    "@type": hcm,
                    stat_prefix: "baseline",
                    route_config: {
                      virtual_hosts: [
                        {
                          name: "products",
                          domains: ["*"],
                          routes: [{ match: { prefix: "/" }, route: { cluster: "primary" } }],
                        },
                      ],
                    },
                    http_filters: [
                      {
                        name: "envoy.filters.http.router",
                        typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
                      },
                    ],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [
        {
          name: "primary",
          type: "STATIC",
          // Present but empty: outlier detection on, with every value at Envoy's default
          // (5 consecutive 5xx, 10 s interval, 30 s base ejection, panic threshold 50%).
          outlier_detection: {},
          load_assignment: {
            cluster_name: "primary",
            endpoints: [primary, ...(fallback ? [fallback] : [])].map((b, priority) => ({
              priority,
              lb_endpoints: [{ endpoint: { address: { socket_address: { address: b.host, port_value: b.port } } } }],
            })),
          },
        },
      ],
    },
  };
  const dir = mkdtempSync(join(tmpdir(), "bench-baseline-"));
  const config = join(dir, "baseline.json");
  writeFileSync(config, JSON.stringify(bootstrap, null, 2));
  const envoy = await startEnvoy({ config, admin: { address: "127.0.0.1", port: admin } });
  const stop = async () => {
    await envoy.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  return { url: `http://127.0.0.1:${listen}/`, envoy, stop };
}

const ms = (v: number) => (v >= 100 ? `${Math.round(v)} ms` : `${v.toFixed(1)} ms`);

function table(rows: Row[], o: Required<FailoverBenchOptions>): string {
  const lines = [
    `Primary SIGKILLed every ${o.crashEveryMs / 1000} s and restarted ${o.downMs / 1000} s later, ${o.rate} req/s for ${o.durationMs / 1000} s, keep-alive clients, one run each.`,
    "",
    "| config | crashes | requests | errors | error rate | p50 | p99 | max | served by primary / fallback |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---|",
  ];
  for (const row of rows) {
    const s = summarize(row.results);
    const fallback = s.total - (s.byBackend.primary ?? 0) - s.errors;
    lines.push(
      `| ${row.config} | ${row.crashes} | ${s.total} | ${s.errors} | ${((100 * s.errors) / Math.max(1, s.total)).toFixed(2)} % | ${ms(s.p50)} | ${ms(s.p99)} | ${ms(s.max)} | ${s.byBackend.primary ?? 0} / ${fallback} |`,
    );
  }
  const errorKinds = rows
    .map((row) => {
      const s = summarize(row.results);
      const kinds = Object.entries(s.byStatus).filter(([status]) => !/^2\d\d$/.test(status));
      return kinds.length ? `${row.config}: ${kinds.map(([k, v]) => `${v}× ${k}`).join(", ")}` : "";
    })
    .filter(Boolean);
  if (errorKinds.length) lines.push("", `Errors by kind — ${errorKinds.join("; ")}.`);
  return lines.join("\n") + "\n";
}

if (process.argv[1] === import.meta.filename) {
  process.stdout.write(await runFailoverBench());
}
