// simulate_failure against a real Envoy: for each scenario the MCP tool (called through the
// SDK's client on `fallbackctl mcp`) says what happens to requests sent one after another:
// who answers, after how many requests outlier detection ejects a backend, and how long a
// client waits. Then the same policy runs in a real Envoy on the project's config, the
// backends misbehave as the scenario says, and the same requests must get those answers.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, stdioSession, type Session } from "../integration/mcp/harness.ts";
import { freePort } from "../support/ports.ts";
import { startBackend, type Backend, type Mode } from "../support/backend.ts";
import { envoyAvailable } from "../support/envoy.ts";
import { fallbackPolicy, service, startGateway, type Gateway } from "../support/gateway.ts";
import { sleep, until } from "../support/poll.ts";
import { send } from "../support/load.ts";

const HOST = "products.shop:8080";
const STATIC = { status: 418, body: '{"degraded":true}', headers: { "content-type": "application/json" } };

let session: Session;
beforeAll(async () => {
  session = await stdioSession();
});
afterAll(async () => {
  await session?.close();
});

type Case = {
  name: string;
  spec?: Record<string, unknown>;
  /** What each backend does, by Service name; "down" is an address nothing listens on. */
  behave: { products: Mode | "down"; "products-cache"?: Mode | "down" };
  scenario: { down?: string[]; slow?: string[]; status?: Record<string, number> };
};

const cases: Case[] = [
  { name: "a dead primary", behave: { products: "down" }, scenario: { down: ["products"] } },
  {
    name: "a primary answering 503",
    behave: { products: { kind: "status", status: 503 } },
    scenario: { status: { products: 503 } },
  },
  {
    name: "a primary answering 500, which gateway-error does not retry: the client gets the 500 until the primary is ejected",
    behave: { products: { kind: "status", status: 500 } },
    scenario: { status: { products: 500 } },
  },
  {
    name: "a primary answering 429, retried",
    spec: {
      retry: {
        retryOn: ["connect-failure", "reset", "gateway-error", "retriable-status-codes"],
        retriableStatusCodes: [429],
      },
    },
    behave: { products: { kind: "status", status: 429 } },
    scenario: { status: { products: 429 } },
  },
  {
    name: "a primary slower than the per-try timeout",
    spec: { retry: { perTryTimeout: "300ms" } },
    behave: { products: { kind: "delay", ms: 3_000 } },
    scenario: { slow: ["products"] },
  },
  {
    name: "a dead primary without fallbackOnRetry: the static answer until the primary is ejected",
    spec: { retry: { fallbackOnRetry: false } },
    behave: { products: "down" },
    scenario: { down: ["products"] },
  },
  {
    name: "every backend answering 503",
    spec: { retry: { attempts: 1 } },
    behave: { products: { kind: "status", status: 503 }, "products-cache": { kind: "status", status: 503 } },
    scenario: { status: { products: 503, "products-cache": 503 } },
  },
  {
    name: "a dead primary that maxEjectionPercent keeps in line",
    spec: { outlierDetection: { maxEjectionPercent: 50, interval: "500ms", baseEjectionTime: "30s" } },
    behave: { products: "down" },
    scenario: { down: ["products"] },
  },
];

/** What a test request got, in the simulator's terms. */
type Seen = { answeredBy: string; status: number; ms: number };

async function request(gateway: Gateway, names: Record<string, string>): Promise<Seen> {
  const r = await send(gateway.url, HOST);
  const answeredBy = r.backend ? names[r.backend]! : r.body === STATIC.body ? "static" : "envoy";
  return { answeredBy, status: r.status, ms: r.latencyMs };
}

describe.skipIf(!envoyAvailable())("simulate_failure agrees with a real Envoy", () => {
  const running: { gateway?: Gateway; backends: Backend[] } = { backends: [] };
  afterAll(async () => {
    await running.gateway?.stop();
    await Promise.all(running.backends.map((b) => b.close()));
  });

  it.each(cases)("$name", async (c) => {
    const spec = {
      targetRef: { name: "products", port: 8080 },
      fallbacks: [{ service: { name: "products-cache", port: 8080 } }, { staticResponse: STATIC }],
      outlierDetection: { interval: "500ms", baseEjectionTime: "30s" },
      ...c.spec,
    };
    const addresses: Record<string, { host: string; port: number }> = {};
    const names: Record<string, string> = {};
    for (const [i, svc] of (["products", "products-cache"] as const).entries()) {
      const host = `127.0.0.${2 + i}`;
      const mode = c.behave[svc] ?? { kind: "ok" };
      if (mode === "down") addresses[svc] = { host, port: await freePort(host) };
      else {
        const b = await startBackend({ name: svc, host, mode });
        running.backends.push(b);
        addresses[svc] = { host, port: b.port };
        names[svc] = svc;
      }
    }
    const objects = [
      ...service("shop", "products", 8080, [addresses.products!]),
      ...service("shop", "products-cache", 8080, [addresses["products-cache"]!]),
      fallbackPolicy("shop", "products", spec),
    ];

    // What the tool says.
    const simulated = await call(session, "simulate_failure", {
      yaml: objects.map((o) => JSON.stringify(o)).join("\n---\n"),
      scenario: c.scenario,
    });
    expect(simulated.isError, simulated.text).toBe(false);
    const s = simulated.data;

    // What Envoy does, request after request.
    running.gateway = await startGateway({ objects });
    try {
      const ejectionOf = (backend: string) =>
        s.ejections.find((e: any) => e.backend === backend && e.by === "outlier detection" && !e.hosts);
      const cluster = (svc: string) =>
        `cluster.shop/products/${svc === "products" ? "primary" : "fallback-1"}.outlier_detection.ejections_active`;
      let sent = 0;
      for (const phase of s.phases) {
        const expected = phase.outcome;
        const count = phase.requests.to ? phase.requests.to - phase.requests.from + 1 : 3;
        for (let i = 0; i < count; i++) {
          const seen = await request(running.gateway, names);
          sent++;
          expect({ request: sent, answeredBy: seen.answeredBy, status: seen.status }, simulated.text).toEqual({
            request: sent,
            answeredBy: expected.answeredBy,
            status: expected.status,
          });
          // Within what the simulator says, give or take the machine's own time (a busy machine
          // adds some; it never takes a per-try timeout away).
          expect(seen.ms, `request ${sent}`).toBeGreaterThanOrEqual(expected.waitMs.min - 5);
          expect(seen.ms, `request ${sent}`).toBeLessThan(expected.waitMs.max + 1_000);
        }
        // The ejections the simulator puts after this phase: Envoy has made them now, and not before.
        for (const backend of ["products", "products-cache"]) {
          const ejection = ejectionOf(backend);
          if (ejection?.afterRequests === sent) {
            await until(
              `${backend} ejected after request ${sent}`,
              async () => ((await running.gateway!.envoy.stat(cluster(backend))) === 1 ? true : undefined),
              5_000,
            );
            // An ejection reaches Envoy's workers a moment after the main thread makes it.
            await sleep(300);
          } else if (!ejection || ejection.afterRequests > sent) {
            expect(
              await running.gateway.envoy.stat(cluster(backend)),
              `${backend} not yet ejected after request ${sent}`,
            ).toBe(0);
          }
        }
      }
      console.log(
        `[mcp-simulate] ${c.name}: ${sent} requests as simulated; ${s.ejections.map((e: any) => `${e.backend} ejected after ${e.afterRequests}`).join(", ") || "no ejection"}`,
      );
    } finally {
      await running.gateway.stop();
      running.gateway = undefined;
      await Promise.all(running.backends.splice(0).map((b) => b.close()));
    }
  });
});
