// An external fallback over TLS, end to end: a local HTTPS backend with a certificate for
// api.backup.example signed by a throwaway CA, which the generated config trusts
// (trustedCA). Envoy must send SNI api.backup.example and verify the certificate by that
// name. The policy's `host` must resolve here, so it is `localhost` (or an IP address) and
// `sni` names the certificate; the tests pin down which Host header arrives:
//   - hostRewrite true (default): Host is the `host` field ("localhost"), not the sni;
//   - hostRewrite false: the client's own Host;
//   - in-cluster backends in the same policy keep the client's Host either way.
import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "../support/ports.ts";
import { spawnBackend, startBackend, type Backend } from "../support/backend.ts";
import { makeCerts, type Certs } from "./harness/certs.ts";
import { envoyAvailable } from "../support/envoy.ts";
import { fallbackPolicy, service, startGateway, type Addr, type Gateway } from "../support/gateway.ts";
import { sleep } from "../support/poll.ts";
import { send, startLoad, summarize } from "../support/load.ts";

const HOST = "products.shop:8080";
const SNI = "api.backup.example";
const STATIC = { status: 418, body: "degraded", headers: { "x-degraded": "static" } };

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

let certs: Certs | undefined;
const testCerts = () => (certs ??= makeCerts([SNI]));

async function tlsBackend(host: string): Promise<Backend> {
  const c = testCerts();
  const b = await startBackend({ name: "backup", host, tls: { keyFile: c.keyFile, certFile: c.certFile } });
  cleanup.push(() => b.close());
  return b;
}

async function gatewayFor(primary: Addr, external: Record<string, unknown>): Promise<Gateway> {
  const objects = [
    ...service("shop", "products", 8080, [primary]),
    fallbackPolicy("shop", "products", {
      targetRef: { name: "products", port: 8080 },
      fallbacks: [{ external }, { staticResponse: STATIC }],
      outlierDetection: { interval: "500ms", baseEjectionTime: "2s" },
    }),
  ];
  const gateway = await startGateway({ objects, trustedCA: testCerts().caFile });
  cleanup.push(() => gateway.stop());
  return gateway;
}

const deadAddress = async (host: string): Promise<Addr> => ({ host, port: await freePort(host) });

describe.skipIf(!envoyAvailable())("external TLS fallback (real Envoy, local HTTPS backend)", () => {
  it("host localhost, sni api.backup.example: TLS verified by that name, Host header is the host field", async () => {
    const backup = await tlsBackend("127.0.0.1");
    const gateway = await gatewayFor(await deadAddress("127.0.0.4"), {
      host: "localhost",
      port: backup.port,
      tls: true,
      sni: SNI,
    });
    const r = await send(gateway.url, HOST);
    expect(r.status, JSON.stringify(r)).toBe(200);
    expect(r.backend).toBe("backup");
    expect(r.backendSni).toBe(SNI);
    // auto_host_rewrite uses the endpoint's hostname, which the compiler sets to `host`.
    expect(r.backendHost).toBe("localhost");
  });

  it("host given as an IP address: the same, with the address as Host", async () => {
    const backup = await tlsBackend("127.0.0.7");
    const gateway = await gatewayFor(await deadAddress("127.0.0.4"), {
      host: "127.0.0.7",
      port: backup.port,
      tls: true,
      sni: SNI,
    });
    const r = await send(gateway.url, HOST);
    expect([r.status, r.backend, r.backendSni, r.backendHost], JSON.stringify(r)).toEqual([
      200,
      "backup",
      SNI,
      "127.0.0.7",
    ]);
  });

  it("hostRewrite: false keeps the client's Host", async () => {
    const backup = await tlsBackend("127.0.0.1");
    const gateway = await gatewayFor(await deadAddress("127.0.0.4"), {
      host: "localhost",
      port: backup.port,
      tls: true,
      sni: SNI,
      hostRewrite: false,
    });
    const r = await send(gateway.url, HOST);
    expect([r.status, r.backend, r.backendSni, r.backendHost], JSON.stringify(r)).toEqual([200, "backup", SNI, HOST]);
  });

  it("the certificate is really checked: an sni the certificate does not name never reaches the backend", async () => {
    const backup = await tlsBackend("127.0.0.1");
    // No sni: it defaults to the host, "localhost", which the certificate does not name.
    const gateway = await gatewayFor(await deadAddress("127.0.0.4"), {
      host: "localhost",
      port: backup.port,
      tls: true,
    });
    for (let i = 0; i < 3; i++) {
      const r = await send(gateway.url, HOST);
      expect([r.status, r.body], JSON.stringify(r)).toEqual([STATIC.status, STATIC.body]);
    }
    expect(await backup.hits()).toBe(0);
    // TLS is spoken by the cluster behind the backend's internal listener (compile/envoy/mediated.ts).
    expect(await gateway.envoy.stat("cluster.shop/products/fallback-1/upstream.ssl.fail_verify_san")).toBeGreaterThan(
      0,
    );
  });

  it("primary killed under 200 req/s: zero errors, traffic moves to the TLS fallback; the primary keeps the client's Host", async () => {
    const backup = await tlsBackend("127.0.0.1");
    const primary = await spawnBackend({ name: "primary", host: "127.0.0.2" });
    cleanup.push(() => primary.close());
    const gateway = await gatewayFor(primary, { host: "localhost", port: backup.port, tls: true, sni: SNI });
    const load = startLoad({ url: gateway.url, host: HOST, rate: 200 });
    cleanup.push(async () => void (await load.stop()));
    await load.waitFor("the primary to answer", (r) => r.backend === "primary");
    await sleep(1_000);
    const killedAt = load.now();
    await primary.kill();
    await load.waitFor("the TLS fallback to answer", (r) => r.backend === "backup", { sinceMs: killedAt });
    await sleep(2_000);
    const results = await load.stop();

    const summary = summarize(results);
    console.log(
      `kill with TLS fallback: ${summary.total} requests, ${summary.errors} errors, p99 ${summary.p99.toFixed(1)}ms, ${JSON.stringify(summary.byBackend)}`,
    );
    expect(summary.errors, JSON.stringify({ byStatus: summary.byStatus, sample: summary.sampleErrors })).toBe(0);
    const hosts = (backend: string) => new Set(results.filter((r) => r.backend === backend).map((r) => r.backendHost));
    // The route has auto_host_rewrite (for the external backend), yet the in-cluster primary,
    // whose endpoints carry no hostname, still gets the client's Host.
    expect(hosts("primary")).toEqual(new Set([HOST]));
    expect(hosts("backup")).toEqual(new Set(["localhost"]));
    expect(new Set(results.filter((r) => r.backend === "backup").map((r) => r.backendSni))).toEqual(new Set([SNI]));
  });
});
