// Config that changes without restarting Envoy, as in a cluster: Envoy runs on the
// renderConfigFiles output (bootstrap.yaml + cds.yaml + lds.yaml) in a folder laid out like a
// kubelet ConfigMap volume, started the way the chart starts it (envoy -c <mount>/bootstrap.yaml,
// Envoy's default drain time). The policy changes, the files are rendered again, and the
// volume is updated the kubelet's way (new timestamped folder, `..data` swapped by rename).
// Continuous load at 200 req/s shows when the new behaviour starts and that nothing fails.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../support/ports.ts";
import { startBackend, type Backend } from "../support/backend.ts";
import { envoyAvailable } from "../support/envoy.ts";
import { fallbackPolicy, service, startGateway, type Addr, type Gateway } from "../support/gateway.ts";
import { sleep, until } from "../support/poll.ts";
import { between, startLoad, summarize, type Load } from "../support/load.ts";

const HOST = "products.shop:8080";

function objects(primary: Addr, staticBody: string) {
  return [
    ...service("shop", "products", 8080, [primary]),
    fallbackPolicy("shop", "products", {
      targetRef: { name: "products", port: 8080 },
      fallbacks: [{ staticResponse: { status: 418, body: staticBody, headers: { "content-type": "text/plain" } } }],
      outlierDetection: { interval: "500ms", baseEjectionTime: "2s" },
    }),
  ];
}

describe.skipIf(!envoyAvailable())(
  "config changes through a kubelet-style ConfigMap volume, without restarting Envoy",
  () => {
    let v1: Backend;
    let v2: Backend;
    let gateway: Gateway;
    let load: Load | undefined;
    const delays: string[] = [];

    beforeAll(async () => {
      v1 = await startBackend({ name: "products-v1", host: "127.0.0.2" });
      v2 = await startBackend({ name: "products-v2", host: "127.0.0.3" });
      gateway = await startGateway({ objects: objects(v1, "static v1"), format: "xds" });
    });

    afterAll(async () => {
      await load?.stop();
      await gateway?.stop();
      await v1?.close();
      await v2?.close();
      if (delays.length) console.log(delays.join("\n"));
    });

    it("starts on the volume: symlinks into ..data, and Envoy serves the first config", async () => {
      const volume = gateway.volume!;
      expect(volume.keys()).toEqual(["bootstrap.yaml", "cds.yaml", "lds.yaml"]);
      expect(volume.current()).toMatch(/^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d+$/);
      load = startLoad({ url: gateway.url, host: HOST, rate: 200 });
      await load.waitFor("v1 to answer", (r) => r.backend === "products-v1");
    });

    it("the Service's endpoints move to another backend: traffic follows with zero errors, same Envoy process", async () => {
      const pid = gateway.envoy.pid;
      const uptimeBefore = await gateway.envoy.stat("server.uptime");
      await sleep(1_000);
      const before = load!.now();
      const swap = gateway.volume!.write(gateway.renderConfigFiles(objects(v2, "static v1")));
      expect(swap.changed).toBe(true);
      const swappedAt = load!.now();
      const first = await load!.waitFor("v2 to answer", (r) => r.backend === "products-v2", {
        sinceMs: before,
        timeoutMs: 30_000,
      });
      await sleep(2_000);
      const results = between(load!.results, 0, load!.now() - 500);

      const lastOld = Math.max(
        ...results.filter((r) => r.backend === "products-v1").map((r) => r.sentAt + r.latencyMs),
      );
      delays.push(
        `endpoint change: first answer from v2 sent ${Math.round(first.sentAt - swappedAt)}ms after the swap; last answer from v1 ${Math.round(lastOld - swappedAt)}ms after it`,
      );
      const summary = summarize(results);
      expect(summary.errors, JSON.stringify({ byStatus: summary.byStatus, sample: summary.sampleErrors })).toBe(0);
      // Everything sent a second after the swap is served by v2.
      const settled = summarize(between(results, swappedAt + 1_000));
      expect(settled.byBackend, JSON.stringify(settled.byBackend)).toEqual({ "products-v2": settled.total });
      // Same process, never restarted.
      expect(gateway.envoy.pid).toBe(pid);
      expect(gateway.envoy.running()).toBe(true);
      expect(await gateway.envoy.stat("server.uptime")).toBeGreaterThanOrEqual(uptimeBefore);
      expect(await gateway.envoy.stat("cluster_manager.cds.update_success")).toBeGreaterThanOrEqual(2);
      expect(await gateway.envoy.stat("cluster_manager.cds.update_rejected")).toBe(0);
    });

    it("the static response changes and the primary goes away: the new body is served, same Envoy process", async () => {
      const pid = gateway.envoy.pid;
      const dead = { host: "127.0.0.4", port: await freePort("127.0.0.4") };
      const before = load!.now();
      gateway.volume!.write(gateway.renderConfigFiles(objects(dead, "static v2")));
      const swappedAt = load!.now();
      const first = await load!.waitFor("the new static body", (r) => r.body === "static v2", {
        sinceMs: before,
        timeoutMs: 30_000,
      });
      // A listener change applies to new connections at once; kept-alive connections finish on
      // the old listener config until Envoy drains them (gradually, over --drain-time-s).
      const allNew = await until(
        "every answer to be the new static body",
        () => {
          const recent = between(load!.results, load!.now() - 1_000, load!.now() - 200);
          return recent.length > 50 && recent.every((r) => r.body === "static v2") ? load!.now() : undefined;
        },
        60_000,
        100,
      );
      const old = between(load!.results, swappedAt).filter((r) => r.body !== "static v2");
      const lastOld = old.length ? Math.max(...old.map((r) => r.sentAt + r.latencyMs)) : swappedAt;
      delays.push(
        `listener change (static body): first new answer sent ${Math.round(first.sentAt - swappedAt)}ms after the swap; ` +
          `last old answer ${Math.round(lastOld - swappedAt)}ms after it; old answers after the swap: ${JSON.stringify(summarize(old).byStatus)} ` +
          `${JSON.stringify(summarize(old).byBackend)} ${JSON.stringify([...new Set(old.map((r) => r.body).filter(Boolean))])}`,
      );
      const after = summarize(
        between(load!.results, allNew - 1_000, allNew - 200),
        (r) => r.status === 418 && r.body === "static v2",
      );
      expect(after.errors).toBe(0);
      // Every answer since the swap is one of: v2 (old config), the old static body, the new one.
      const since = between(load!.results, swappedAt);
      const unexpected = since.filter(
        (r) => !(r.backend === "products-v2" || r.body === "static v1" || r.body === "static v2"),
      );
      expect(unexpected.slice(0, 3)).toEqual([]);
      expect(gateway.envoy.pid).toBe(pid);
      expect(await gateway.envoy.stat("listener_manager.lds.update_rejected")).toBe(0);
    });

    it("an unchanged render is not written again (as the kubelet skips it) and changes nothing", async () => {
      const current = gateway.volume!.current();
      const result = gateway.volume!.write(
        gateway.renderConfigFiles(objects({ host: "127.0.0.4", port: 1 }, "static v2")),
      );
      // Different port -> different config; the same objects twice -> unchanged.
      expect(result.changed).toBe(true);
      const again = gateway.volume!.write(
        gateway.renderConfigFiles(objects({ host: "127.0.0.4", port: 1 }, "static v2")),
      );
      expect(again.changed).toBe(false);
      expect(gateway.volume!.current()).toBe(result.payloadDir);
      expect(result.payloadDir).not.toBe(current);
    });
  },
);
