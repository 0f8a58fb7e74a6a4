// Leader election between operators sharing one Lease: only the leader handles, the
// standby keeps its cache warm and takes over when the leader releases or dies.

import { CoordinationV1Api, KubeConfig } from "@kubernetes/client-node";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestNamespace } from "../../support/kubectl.ts";
import { until } from "../../support/poll.ts";
import { KubeClient, Operator, createLogger, type ResourceSpec, type Store } from "../../../operator/src/kopf/index.ts";

const kubeconfig = inject("kubeconfig");
const logger = createLogger({ level: process.env["KOPF_TEST_LOG"] ?? "silent" });
const kc = new KubeConfig();
kc.loadFromFile(kubeconfig);
const client = new KubeClient(kc);
const leases = kc.makeApiClient(CoordinationV1Api);
const kopfIndex = resolve(import.meta.dirname, "../../../operator/src/kopf/index.ts");

const timing = { leaseDurationSeconds: 2, renewDeadlineMs: 1500, retryPeriodMs: 250 };
let ns: string;
const running: Operator[] = [];

beforeAll(async () => {
  ns = await createTestNamespace(kubeconfig, "kopf-leader");
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((o) => o.stop()));
});

const stores = new Map<Operator, Store>();

/** An operator whose handler records each object it sees for the first time, as "identity:name". */
function operator(identity: string, leaseName: string, handled: string[], resource: ResourceSpec): Operator {
  const op = new Operator({
    name: "kopf-leader-it",
    domain: "kopf-test.dev",
    kubeConfig: kc,
    logger: logger.child({ identity }),
    http: { port: 0, host: "127.0.0.1" },
    leaderElection: { namespace: ns, leaseName, identity, ...timing },
  });
  const store = op.watch(resource);
  const seen = new Set<string>();
  op.handler(
    "record",
    () => {
      for (const o of store.list())
        if (!seen.has(o.metadata.name)) seen.add(o.metadata.name) && handled.push(`${identity}:${o.metadata.name}`);
    },
    { watches: [resource], debounceMs: 10 },
  );
  stores.set(op, store);
  running.push(op);
  return op;
}

const holder = async (leaseName: string) =>
  (await leases.readNamespacedLease({ name: leaseName, namespace: ns })).spec?.holderIdentity;

describe("leader election", () => {
  it("lets only the leader handle; the standby keeps its cache and takes over on release", async () => {
    const resource = { group: "", version: "v1", plural: "configmaps", namespace: ns, labelSelector: "test=release" };
    const handled: string[] = [];
    const a = operator("a", "release", handled, resource);
    const b = operator("b", "release", handled, resource);
    await Promise.all([a.start(), b.start()]);
    await until("one leader", () => a.isLeader !== b.isLeader);
    const [leader, standby] = a.isLeader ? [a, b] : [b, a];
    const standbyId = leader === a ? "b" : "a";
    expect(await holder("release")).toBe(leader === a ? "a" : "b");

    for (const name of ["r1", "r2", "r3"]) {
      await client.create(resource, { metadata: { name, namespace: ns, labels: { test: "release" } } });
    }
    await until("all handled", () => handled.length === 3);
    await new Promise((r) => setTimeout(r, 500));
    expect(handled.every((h) => !h.startsWith(`${standbyId}:`))).toBe(true);
    // The standby's cache is warm, and it reports ready as a healthy standby.
    expect(stores.get(standby)!.size).toBe(3);
    expect((await fetch(`http://127.0.0.1:${standby.httpPort}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`http://127.0.0.1:${leader.httpPort}/metrics`)).text();
    expect(metrics).toMatch(/leader_election_master_status\{name="release"\} 1/);

    // Graceful stop releases the Lease: the standby need not wait for it to expire.
    const released = Date.now();
    await leader.stop();
    await until("standby leads", () => standby.isLeader, 5000);
    expect(Date.now() - released).toBeLessThan(timing.leaseDurationSeconds * 1000);
    await client.create(resource, { metadata: { name: "r4", namespace: ns, labels: { test: "release" } } });
    await until("new leader handles", () => handled.includes(`${standbyId}:r4`));
  });

  it("clears holderIdentity when the leader shuts down", async () => {
    const resource = { group: "", version: "v1", plural: "configmaps", namespace: ns, labelSelector: "test=solo" };
    const solo = operator("solo", "solo", [], resource);
    await solo.start();
    await until("solo leads", () => solo.isLeader);
    await solo.stop();
    expect(await holder("solo")).toBeUndefined();
  });

  it("takes over a Lease whose holder died without releasing it", async () => {
    // The first leader is a separate process, killed with SIGKILL: no release, no goodbye.
    const child = spawnOperator("crash", "doomed");
    try {
      await until("child leads", async () => (await holder("crash").catch(() => undefined)) === "doomed", 30_000).catch(
        (e) => {
          throw new Error(`${e}\n${child.stderr()}`);
        },
      );
      const resource = { group: "", version: "v1", plural: "configmaps", namespace: ns, labelSelector: "test=crash" };
      const handled: string[] = [];
      const heir = operator("heir", "crash", handled, resource);
      await heir.start();
      await new Promise((r) => setTimeout(r, 700));
      expect(heir.isLeader).toBe(false); // the Lease is alive: wait

      child.process.kill("SIGKILL");
      const killed = Date.now();
      await until("heir leads", () => heir.isLeader, 10_000);
      // Not before the lease could have expired, by the heir's own clock.
      expect(Date.now() - killed).toBeGreaterThanOrEqual(timing.leaseDurationSeconds * 1000 - 600);
      expect(await holder("crash")).toBe("heir");
      await client.create(resource, { metadata: { name: "c1", namespace: ns, labels: { test: "crash" } } });
      await until("heir handles", () => handled.includes("heir:c1"));
    } finally {
      child.process.kill("SIGKILL");
    }
  });

  it("shuts down gracefully on SIGTERM: exits 0 and releases the Lease", async () => {
    const child = spawnOperator("term", "terminated");
    try {
      await until(
        "child leads",
        async () => (await holder("term").catch(() => undefined)) === "terminated",
        30_000,
      ).catch((e) => {
        throw new Error(`${e}\n${child.stderr()}`);
      });
      const exited = new Promise<number | null>((r) => child.process.once("exit", (code) => r(code)));
      child.process.kill("SIGTERM");
      expect(await exited, child.stderr()).toBe(0);
      expect(await holder("term")).toBeUndefined();
    } finally {
      child.process.kill("SIGKILL");
    }
  });
});

/** An operator in a child process, as it would run in a Pod: run() with signal handling. */
function spawnOperator(leaseName: string, identity: string) {
  const dir = mkdtempSync(join(tmpdir(), "kopf-leader-"));
  const script = join(dir, "child.ts");
  writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
  writeFileSync(
    script,
    `
    import { Operator, createLogger } from ${JSON.stringify(kopfIndex)};
    // No kubeConfig given: the default loader reads $KUBECONFIG, as in a real deployment.
    const op = new Operator({
      name: "kopf-leader-it", domain: "kopf-test.dev", logger: createLogger({ level: "warn" }),
      leaderElection: { namespace: process.env.NS, leaseName: ${JSON.stringify(leaseName)}, identity: ${JSON.stringify(identity)},
        ...${JSON.stringify(timing)} },
    });
    op.handler("noop", () => {}, { watches: [{ group: "", version: "v1", plural: "configmaps", namespace: process.env.NS, labelSelector: "test=child" }] });
    await op.run();
  `,
  );
  const child = spawn(process.execPath, [script], {
    env: { ...process.env, KUBECONFIG: kubeconfig, NS: ns },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += String(d)));
  return { process: child, stderr: () => stderr };
}
