// GitOps health: what kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status, what Flux waits on
// resources with) says of the statuses the real operator writes, read back from the API
// server. Ready -> Current; waiting for something that may yet appear (a missing Service)
// -> InProgress; stuck until its author changes it (Invalid, Conflicted) -> Failed, through
// Stalled=True. And back to Current once each is put right.
//
// The Invalid policy must reach the API server, which checks what the operator checks: it
// is stored under a laxer CRD (without the CEL rules), then the real CRD is applied, as an
// upgrade that tightens a rule leaves an old policy behind. That changes the CRD, which is
// cluster-wide, so this file runs on a control plane of its own.
import { spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { customResourceDefinition } from "../../operator/src/api/crd.ts";
import { createTestNamespace, kubectl, apply, getJson, kube } from "../support/kubectl.ts";
import { repoRoot } from "../support/paths.ts";
import { startControlPlane, type ControlPlane } from "../support/controlplane.ts";
import { conditionOf, startOperator, type RunningOperator } from "../support/operator.ts";
import { until } from "../support/poll.ts";
import { policy, service } from "../support/objects.ts";

const kstatusBinary = join(repoRoot, ".local/bin/kstatus");
const dir = join(repoRoot, ".local", `test-kstatus-${process.pid}`);

type Verdict = {
  kind: string;
  namespace: string;
  name: string;
  status: string;
  message: string;
  conditions: { type: string; status: string; reason: string; message: string }[];
};

/** kstatus's verdict on each object of a JSON document (an object or a List), by name. */
function kstatus(document: unknown): Promise<Record<string, Verdict>> {
  return new Promise((done, fail) => {
    const proc = spawn(kstatusBinary, ["-o", "json"], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    proc.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s));
    proc.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
    proc.once("error", fail);
    proc.once("close", (code) => {
      if (code !== 0) return fail(new Error(`kstatus exited ${code}: ${stderr}`));
      const verdicts = stdout
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Verdict);
      done(Object.fromEntries(verdicts.map((v) => [v.name, v])));
    });
    proc.stdin.end(JSON.stringify(document));
  });
}

/** The CRD without any CEL rule: what an earlier, laxer release could have installed. */
const laxCrd = () =>
  JSON.parse(JSON.stringify(customResourceDefinition()), (key, value) =>
    key === "x-kubernetes-validations" ? undefined : value,
  );

let cp: ControlPlane;
let kubeconfig: string;
let apps: string;
let operator: RunningOperator;

const crdReady = async () => {
  await kube(kubeconfig, [
    "wait",
    "--for",
    "condition=Established",
    "--timeout",
    "60s",
    "crd/fallbackpolicies.fallback.dev",
  ]);
};
const getPolicy = (name: string) => getJson(kubeconfig, ["fallbackpolicy", name, "-n", apps]);
const listPolicies = () => getJson(kubeconfig, ["fallbackpolicies", "-n", apps]);
/** The policy once the operator wrote a status for its current generation that passes `check`. */
const settled = (name: string, what: string, check: (p: any) => boolean) =>
  until(
    `${name}: ${what}`,
    async () => {
      const p = await getPolicy(name);
      const generation = p?.metadata?.generation;
      const current =
        p?.status?.observedGeneration === generation &&
        (p?.status?.conditions ?? []).every((c: any) => c.observedGeneration === generation);
      return current && check(p) && p;
    },
    60_000,
  );

// Its staticResponse comes before another fallback: the CRD's CEL rule, and the operator, refuse it.
const invalidSpec = { fallbacks: [{ staticResponse: { status: 503 } }, { service: { name: "cart", port: 8080 } }] };

beforeAll(async () => {
  if (!existsSync(kstatusBinary)) throw new Error(`${kstatusBinary} is missing; run make setup (scripts/setup.sh)`);
  rmSync(dir, { recursive: true, force: true });
  cp = await startControlPlane({ dir });
  kubeconfig = cp.kubeconfigPath;

  await kube(kubeconfig, ["apply", "-f", "-"], JSON.stringify(laxCrd()));
  await crdReady();
  apps = await createTestNamespace(kubeconfig, "kstatus-apps");
  const config = await createTestNamespace(kubeconfig, "kstatus-config");
  await apply(kubeconfig, [service(apps, "legacy"), policy(apps, "legacy", invalidSpec)]);

  await kube(kubeconfig, ["apply", "-f", join(repoRoot, "crds")]);
  await crdReady();
  // The API server now refuses such a policy: the stored one only got in under the old CRD.
  await until("the real CRD in force", async () => {
    const r = await kubectl(kubeconfig, ["apply", "--dry-run=server", "-f", "-"], {
      input: JSON.stringify(policy(apps, "probe", invalidSpec)),
    });
    return r.code !== 0 && /staticResponse is only allowed as the last fallback/.test(r.stderr);
  });

  operator = await startOperator({ kubeconfig, configNamespace: config, watchNamespace: apps });
}, 180_000);

afterAll(async () => {
  const code = await operator?.stop();
  await cp?.stop();
  rmSync(dir, { recursive: true, force: true });
  expect(code).toBe(0);
  expect(operator.output()).not.toMatch(/"level":"(error|fatal)"/);
});

describe("kstatus on the operator's statuses", () => {
  it("Ready -> Current, a missing Service -> InProgress, Invalid and Conflicted -> Failed", async () => {
    await apply(kubeconfig, [
      service(apps, "shop"),
      policy(apps, "shop"),
      service(apps, "cart"),
      // Its fallback Service does not exist (yet).
      policy(apps, "cart", {
        fallbacks: [{ service: { name: "cart-cache", port: 8080 } }, { staticResponse: { status: 503 } }],
      }),
    ]);
    await settled("shop", "Ready", (p) => conditionOf(p, "Ready")?.status === "True");
    // Two policies on one Service port: the younger loses.
    await apply(kubeconfig, [policy(apps, "shop-again", { targetRef: { name: "shop", port: 8080 } })]);

    await settled("cart", "ResolvedRefs=False", (p) => conditionOf(p, "ResolvedRefs")?.reason === "ServiceNotFound");
    const legacy = await settled("legacy", "Invalid", (p) => conditionOf(p, "Accepted")?.reason === "Invalid");
    const again = await settled("shop-again", "Conflicted", (p) => conditionOf(p, "Accepted")?.reason === "Conflicted");
    expect(conditionOf(legacy, "Stalled")).toMatchObject({
      status: "True",
      reason: "Invalid",
      message: conditionOf(legacy, "Accepted")!.message,
    });
    expect(conditionOf(again, "Stalled")).toMatchObject({
      status: "True",
      reason: "Conflicted",
      message: conditionOf(again, "Accepted")!.message,
    });
    expect(conditionOf(again, "Ready")).toMatchObject({ status: "False", reason: "Conflicted" }); // Ready keeps its meaning

    const verdicts = await kstatus(await listPolicies());
    expect(Object.keys(verdicts).sort()).toEqual(["cart", "legacy", "shop", "shop-again"]);
    expect(verdicts["shop"]).toMatchObject({ kind: "FallbackPolicy", namespace: apps, status: "Current" });
    expect(verdicts["cart"]).toMatchObject({
      status: "InProgress",
      message: expect.stringContaining(`Service ${apps}/cart-cache not found`),
    });
    expect(verdicts["legacy"]).toMatchObject({
      status: "Failed",
      message: expect.stringContaining("staticResponse is only allowed as the last fallback"),
      conditions: [
        { type: "Stalled", status: "True", reason: "Invalid", message: conditionOf(legacy, "Accepted")!.message },
      ],
    });
    expect(verdicts["shop-again"]).toMatchObject({
      status: "Failed",
      message: `FallbackPolicy ${apps}/shop already governs Service ${apps}/shop:8080; the oldest policy wins.`,
      conditions: [{ type: "Stalled", status: "True", reason: "Conflicted" }],
    });

    // Without Stalled, kstatus goes by Ready=False alone: InProgress, and Flux would wait out its timeout.
    const withoutStalled = {
      ...again,
      status: { ...again.status, conditions: again.status.conditions.filter((c: any) => c.type !== "Stalled") },
    };
    expect((await kstatus(withoutStalled))["shop-again"]).toMatchObject({
      status: "InProgress",
      message: expect.stringContaining("already governs"),
    });
  });

  it("each goes Current once put right, and Stalled goes with what stalled it", async () => {
    await apply(kubeconfig, [service(apps, "cart-cache")]);
    await kube(kubeconfig, [
      "patch",
      "fallbackpolicy",
      "legacy",
      "-n",
      apps,
      "--type",
      "merge",
      "-p",
      JSON.stringify({ spec: { fallbacks: [{ staticResponse: { status: 503 } }] } }),
    ]);
    await kube(kubeconfig, ["delete", "fallbackpolicy", "shop", "-n", apps]);

    for (const name of ["cart", "legacy", "shop-again"]) {
      const p = await settled(name, "Ready", (p) => conditionOf(p, "Ready")?.status === "True");
      expect(conditionOf(p, "Stalled")).toBeUndefined();
      expect(p.status.conditions.slice(0, 4).map((c: any) => [c.type, c.status])).toEqual(
        ["Accepted", "ResolvedRefs", "Programmed", "Ready"].map((t) => [t, "True"]),
      );
    }
    expect((await getPolicy("legacy")).metadata.generation).toBe(2);
    const verdicts = await kstatus(await listPolicies());
    expect(Object.fromEntries(Object.entries(verdicts).map(([name, v]) => [name, v.status]))).toEqual({
      cart: "Current",
      legacy: "Current",
      "shop-again": "Current",
    });
  });

  it("a spec change the operator has not seen yet is InProgress, whatever the conditions say", async () => {
    const p = await getPolicy("cart");
    const ahead = { ...p, metadata: { ...p.metadata, generation: p.metadata.generation + 1 } };
    expect((await kstatus(ahead))["cart"]).toMatchObject({
      status: "InProgress",
      message: expect.stringContaining("latest observed generation"),
    });
  });
});
