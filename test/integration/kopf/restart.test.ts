// The operator rides out an API server restart: watches fail, lists are refused, the
// Lease cannot be renewed for a while, and then everything must come back on its own.
// This file runs its own control plane so that restarting it disturbs no other test.

import { KubeConfig } from "@kubernetes/client-node";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestNamespace, repoRoot, startControlPlane, type ControlPlane } from "../../harness/controlplane.ts";
import { KubeClient, Operator, createLogger } from "../../../operator/src/kopf/index.ts";

const logger = createLogger({ level: process.env["KOPF_TEST_LOG"] ?? "silent" });
const dir = join(repoRoot, ".local", `test-kopf-restart-${process.pid}`);
let cp: ControlPlane;
let op: Operator | undefined;

const until = async (what: string, cond: () => boolean | Promise<boolean>, ms = 60_000) => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

beforeAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  cp = await startControlPlane({ dir });
});

afterAll(async () => {
  await op?.stop();
  await cp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("API server restart", () => {
  it("recovers watches, leadership and handling without crashing", async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    const client = new KubeClient(kc, { timeoutMs: 5000 });
    const ns = await createTestNamespace(cp.kubeconfigPath, "kopf-restart");
    const CM = { group: "", version: "v1", plural: "configmaps", namespace: ns };
    const seen: string[] = [];
    op = new Operator({
      name: "kopf-restart-it",
      domain: "kopf-test.dev",
      kubeConfig: kc,
      logger,
      http: { port: 0, host: "127.0.0.1" },
      leaderElection: { namespace: ns, identity: "survivor", leaseDurationSeconds: 4, renewDeadlineMs: 3000, retryPeriodMs: 500 },
      informer: { backoff: { baseMs: 200, maxMs: 2000, jitter: 0.2 } },
      retryBackoff: { baseMs: 200, maxMs: 2000 },
    });
    op.on.create(CM, (ctx) => void seen.push(`create:${ctx.name}`));
    op.on.update(CM, (ctx) => void seen.push(`update:${ctx.name}`));
    await op.start();
    await until("leading", () => op!.isLeader);

    await client.create(CM, { metadata: { name: "before", namespace: ns }, data: { v: "1" } });
    await until("handled before restart, and recorded as handled", async () =>
      seen.includes("create:before") &&
      (await client.get(CM, ns, "before")).metadata.annotations?.["kopf-test.dev/last-handled-configuration"] !== undefined);

    await cp.restart();

    // While it was down the operator may have stepped down; it must lead again, with
    // watches re-established, and handle what happens next.
    await until("leading again", () => op!.isLeader);
    await client.create(CM, { metadata: { name: "after", namespace: ns }, data: { v: "1" } });
    await client.patch(CM, ns, "before", { data: { v: "2" } });
    await until("handled after restart", () => seen.includes("create:after") && seen.includes("update:before"));
    expect(seen.filter((s) => s === "create:before")).toHaveLength(1);

    const ready = await fetch(`http://127.0.0.1:${op.httpPort}/readyz`);
    expect(ready.status, await ready.text()).toBe(200);
  });
});
