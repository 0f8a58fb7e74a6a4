// The staticResponse fallback, end to end: when every backend before it fails, clients get
// exactly its status, body and headers, also when retries run out before the chain reaches
// it (then Envoy's own failure answer is mapped to it). Real Envoy, generated bootstrap,
// backends that are dead (nothing listens), hung, or answering 503 themselves.
import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "../support/ports.ts";
import { startBackend, type Backend, type Mode } from "../support/backend.ts";
import { envoyAvailable } from "../support/envoy.ts";
import { fallbackPolicy, service, startGateway, type Addr, type Gateway } from "../support/gateway.ts";
import { sleep } from "../support/poll.ts";
import { send, startLoad, summarize, type Result } from "../support/load.ts";

const HOST = "products.shop:8080";
const STATIC = {
  status: 418,
  body: '{"degraded":true,"items":[]}',
  headers: { "content-type": "application/json", "retry-after": "30", "x-degraded": "static" },
};

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** An address nothing listens on: connection refused. */
const deadAddress = async (host: string): Promise<Addr> => ({ host, port: await freePort(host) });

async function backend(name: string, host: string, mode: Mode): Promise<Backend> {
  const b = await startBackend({ name, host, mode });
  cleanup.push(() => b.close());
  return b;
}

/** products -> each of `fallbackServices` in order -> static response. */
async function gatewayFor(
  addresses: Addr[],
  spec: Record<string, unknown>,
  staticResponse: object = STATIC,
): Promise<Gateway> {
  const [primary, ...rest] = addresses;
  const objects = [
    ...service("shop", "products", 8080, [primary!]),
    ...rest.flatMap((a, i) => service("shop", `fallback-${i + 1}`, 8080, [a])),
    fallbackPolicy("shop", "products", {
      targetRef: { name: "products", port: 8080 },
      fallbacks: [...rest.map((_, i) => ({ service: { name: `fallback-${i + 1}`, port: 8080 } })), { staticResponse }],
      outlierDetection: { interval: "500ms", baseEjectionTime: "2s" },
      ...spec,
    }),
  ];
  const gateway = await startGateway({ objects });
  cleanup.push(() => gateway.stop());
  return gateway;
}

const isStatic = (r: Result) =>
  r.status === STATIC.status &&
  r.body === STATIC.body &&
  r.headers?.["content-type"] === STATIC.headers["content-type"] &&
  r.headers?.["retry-after"] === STATIC.headers["retry-after"] &&
  r.headers?.["x-degraded"] === STATIC.headers["x-degraded"] &&
  r.backend === undefined;

const describeStatic = (r: Result) =>
  JSON.stringify({ status: r.status, backend: r.backend, body: r.body, error: r.error, headers: r.headers });

/** Single requests first (nothing ejected yet), then 3 s at 200 req/s (ejections come and go). */
async function expectOnlyStatic(gateway: Gateway, label: string) {
  for (let i = 0; i < 5; i++) {
    const r = await send(gateway.url, HOST);
    expect(
      isStatic({ seq: i, sentAt: 0, ...r }),
      `${label}, request ${i}: ${describeStatic({ seq: i, sentAt: 0, ...r })}`,
    ).toBe(true);
  }
  const load = startLoad({ url: gateway.url, host: HOST, rate: 200 });
  cleanup.push(async () => void (await load.stop()));
  await sleep(3_000);
  const results = await load.stop();
  const summary = summarize(results, isStatic);
  console.log(`${label}: ${summary.total} requests, ${summary.ok} static answers, p99 ${summary.p99.toFixed(1)}ms`);
  expect(summary.total).toBeGreaterThan(400);
  expect(summary.errors, `${label}: ${summary.sampleErrors.map(describeStatic).join("\n")}`).toBe(0);
}

describe.skipIf(!envoyAvailable())("staticResponse when every backend fails (real Envoy)", () => {
  it("every backend dead, default retries: the static status, body and headers", async () => {
    const gateway = await gatewayFor([await deadAddress("127.0.0.4"), await deadAddress("127.0.0.5")], {});
    await expectOnlyStatic(gateway, "all dead, attempts 2");
  });

  it("attempts: 0 and several dead backends: Envoy's own failure answer becomes the static response", async () => {
    const dead = [await deadAddress("127.0.0.4"), await deadAddress("127.0.0.5"), await deadAddress("127.0.0.6")];
    const gateway = await gatewayFor(dead, { retry: { attempts: 0 } });
    await expectOnlyStatic(gateway, "all dead, attempts 0");
  });

  it("attempts: 1 and three dead backends (retries run out before the static entry)", async () => {
    const dead = [await deadAddress("127.0.0.4"), await deadAddress("127.0.0.5"), await deadAddress("127.0.0.6")];
    const gateway = await gatewayFor(dead, { retry: { attempts: 1 } });
    await expectOnlyStatic(gateway, "all dead, attempts 1");
  });

  it("every backend hung beyond the per-try timeout, attempts: 1: the static response", async () => {
    const a = await backend("primary", "127.0.0.4", { kind: "hang" });
    const b = await backend("cache", "127.0.0.5", { kind: "hang" });
    const gateway = await gatewayFor([a, b], { retry: { attempts: 1, perTryTimeout: "200ms" } });
    await expectOnlyStatic(gateway, "all hung, attempts 1");
  });

  // ---- failures the backends answer themselves --------------------------------------------
  // The static answer replaces any final answer the retry policy counts as a failure, not
  // only Envoy's own failure replies (custom_response on the virtual host).

  it("backends answering 503 themselves and retries running out: the static response, not the last 503", async () => {
    const a = await backend("primary", "127.0.0.4", { kind: "status", status: 503 });
    const b = await backend("cache", "127.0.0.5", { kind: "status", status: 503 });
    const gateway = await gatewayFor([a, b], { retry: { attempts: 1 } });
    const r = await send(gateway.url, HOST);
    expect(isStatic({ seq: 0, sentAt: 0, ...r }), describeStatic({ seq: 0, sentAt: 0, ...r })).toBe(true);
  });

  it("a static status that is itself retriable (503) is answered once, never retried", async () => {
    const a = await backend("primary", "127.0.0.4", { kind: "status", status: 503 });
    // The API's own example: the static answer is a 503, and gateway-error retries 503s.
    const gateway = await gatewayFor([a], { retry: { attempts: 2 } }, { ...STATIC, status: 503 });
    const r = await send(gateway.url, HOST);
    expect(r.status).toBe(503);
    expect(r.body, describeStatic({ seq: 0, sentAt: 0, ...r })).toBe(STATIC.body);
  });

  // Envoy reads YAML 1.1, where a bare yes/no/on/off is a boolean; the emitter quotes them.
  it("a static header value or body of yes/no stays a string for Envoy", async () => {
    const gateway = await gatewayFor(
      [await deadAddress("127.0.0.4")],
      {},
      { status: 503, body: "no", headers: { "x-degraded": "yes" } },
    );
    const r = await send(gateway.url, HOST);
    expect([r.status, r.body, r.headers?.["x-degraded"]]).toEqual([503, "no", "yes"]);
  });
});
