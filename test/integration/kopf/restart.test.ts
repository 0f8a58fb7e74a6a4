// The operator rides out an API server restart: watches fail, lists are refused, the
// Lease cannot be renewed for a while, and then everything must come back on its own.
// This file runs its own control plane so that restarting it disturbs no other test.

import { KubeConfig } from "@kubernetes/client-node";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestNamespace } from "../../support/kubectl.ts";
import { repoRoot } from "../../support/paths.ts";
import { startControlPlane, type ControlPlane } from "../../support/controlplane.ts";
import { until } from "../../support/poll.ts";
import { KubeClient, Operator, createLogger } from "../../../operator/src/kopf/index.ts";

const logger = createLogger({ level: process.env["KOPF_TEST_LOG"] ?? "silent" });
const dir = join(repoRoot, ".local", `test-kopf-restart-${process.pid}`);
let cp: ControlPlane;
let op: Operator | undefined;

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
      leaderElection: {
        namespace: ns,
        identity: "survivor",
        leaseDurationSeconds: 4,
        renewDeadlineMs: 3000,
        retryPeriodMs: 500,
      },
      informer: { backoff: { baseMs: 200, maxMs: 2000, jitter: 0.2 } },
      retryBackoff: { baseMs: 200, maxMs: 2000 },
    });
    // The handler records each state it sees of each object: "name:v".
    const cms = op.watch(CM);
    op.handler(
      "record",
      () => {
        for (const o of cms.list()) {
          const state = `${o.metadata.name}:${(o["data"] as { v?: string } | undefined)?.v}`;
          if (!seen.includes(state)) seen.push(state);
        }
      },
      { watches: [CM], debounceMs: 10 },
    );
    await op.start();
    await until("leading", () => op!.isLeader);

    await client.create(CM, { metadata: { name: "before", namespace: ns }, data: { v: "1" } });
    await until("handled before restart", () => seen.includes("before:1"));

    await cp.restart();

    // While it was down the operator may have stepped down; it must lead again, with
    // watches re-established, and handle what happens next.
    await until("leading again", () => op!.isLeader);
    await client.create(CM, { metadata: { name: "after", namespace: ns }, data: { v: "1" } });
    await client.patch(CM, ns, "before", { data: { v: "2" } });
    await until("handled after restart", () => seen.includes("after:1") && seen.includes("before:2"));

    const ready = await fetch(`http://127.0.0.1:${op.httpPort}/readyz`);
    expect(ready.status, await ready.text()).toBe(200);
  });
});
