// The framework talks to the API server over one connection pool: requests, Events and
// the leader Lease reuse its connections. (client-node 2.0.1 builds a new pool, so a new
// TCP and TLS connection, for every request of its generated API clients; at 1,000
// policies that was ~100 MB of native memory in the operator.) Counted with node:net's
// diagnostics channel, which reports every client socket the process opens.

import { KubeConfig } from "@kubernetes/client-node";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestNamespace } from "../../support/kubectl.ts";
import {
  EventRecorder,
  KubeClient,
  LeaderElector,
  createLogger,
  type ResourceSpec,
} from "../../../operator/src/kopf/index.ts";

const kc = new KubeConfig();
kc.loadFromFile(inject("kubeconfig"));
const logger = createLogger({ level: "silent" });
const CONFIG_MAPS: ResourceSpec = { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap" };

let connections = 0;
const onConnected = () => void connections++;
let ns: string;

beforeAll(async () => {
  ns = await createTestNamespace(inject("kubeconfig"), "kopf-connections");
  subscribe("net.client.socket", onConnected);
});
afterAll(() => unsubscribe("net.client.socket", onConnected));

describe("one connection pool", () => {
  it("serves 60 requests, 20 Events and a leader's Lease renewals over a few connections", async () => {
    const client = new KubeClient(kc);
    const recorder = new EventRecorder(client, {
      reportingController: "kopf-test.dev/conn",
      reportingInstance: "t",
      logger,
    });
    const elector = new LeaderElector(
      client,
      { namespace: ns, leaseName: "conn", leaseDurationSeconds: 2, renewDeadlineMs: 1500, retryPeriodMs: 100 },
      { onStartedLeading: () => {}, onStoppedLeading: () => {} },
      logger,
    );
    connections = 0;

    const cm = await client.create(CONFIG_MAPS, { metadata: { name: "conn", namespace: ns }, data: { n: "0" } });
    for (let i = 0; i < 20; i++) {
      // One at a time: a pool opens a second connection only for requests in flight at once.
      await client.patch(CONFIG_MAPS, ns, "conn", { data: { n: String(i) } });
      await client.get(CONFIG_MAPS, ns, "conn");
      await recorder.normal(cm, `Step${i}`, `step ${i}`); // a new Event each: a create, not a series update
    }
    elector.start();
    await new Promise((r) => setTimeout(r, 1500)); // ~15 renewals at a 100 ms retry period
    expect(elector.isLeader).toBe(true);
    await elector.stop();

    const events = await client.list(
      { group: "events.k8s.io", version: "v1", plural: "events", kind: "Event" },
      { namespace: ns },
    );
    expect(
      events.items.filter((e) => (e as { reportingController?: string }).reportingController === "kopf-test.dev/conn"),
    ).toHaveLength(20);
    expect(connections).toBeGreaterThan(0);
    expect(connections).toBeLessThanOrEqual(3);
  });
});
