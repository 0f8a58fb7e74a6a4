// The controller's pure parts: the status written for a compile result, and the ConfigMap
// it owns. The live behaviour is in test/integration/operator.
import { describe, expect, it } from "vitest";
import { policyConditions, readyFrom, type PolicyResult } from "../../operator/src/compile/results.ts";
import {
  configMapUpdate,
  configSize,
  holds,
  configMapObject,
  HASH_ANNOTATION,
} from "../../operator/src/controller/configmap.ts";
import { desiredStatus } from "../../operator/src/controller/status.ts";

const ref = { namespace: "fallback-system", name: "fallback-envoy" };
const t0 = new Date("2026-11-01T10:00:00Z");
const t1 = new Date("2026-11-01T11:00:00Z");

const result = (ok: boolean, configHash = "sha256:aaa"): PolicyResult => ({
  key: "shop/products",
  generation: 2,
  fallbackCount: 1,
  errors: [],
  backends: [{ name: "products", kind: "Service", endpoints: 2, resolution: "EndpointSlices", drained: false }],
  conditions: [
    { type: "Accepted", status: "True", reason: "Accepted", message: "a" },
    {
      type: "ResolvedRefs",
      status: ok ? "True" : "False",
      reason: ok ? "ResolvedRefs" : "ServiceNotFound",
      message: "r",
    },
    { type: "Programmed", status: ok ? "True" : "False", reason: ok ? "Programmed" : "NotProgrammed", message: "p" },
    { type: "Ready", status: ok ? "True" : "False", reason: ok ? "Ready" : "ServiceNotFound", message: "ready" },
  ],
  ...(ok ? { configHash } : {}),
});
const policy = (status?: unknown) => ({ metadata: { name: "products", namespace: "shop", generation: 2 }, status });
const ready = (s: any) => s.conditions.find((c: any) => c.type === "Ready");

describe("desiredStatus", () => {
  it("fills in every field of api.md for the policy's generation", () => {
    const s: any = desiredStatus(policy(), result(true), { configMap: ref, xdsServer: false }, t0);
    expect(s.observedGeneration).toBe(2);
    expect(s.conditions.map((c: any) => [c.type, c.status, c.observedGeneration, c.lastTransitionTime])).toEqual([
      ...["Accepted", "ResolvedRefs", "Programmed", "Ready"].map((t) => [t, "True", 2, "2026-11-01T10:00:00Z"]),
      // ConfigMap mode: no Envoy reports its stats to the operator.
      ["FallbackActive", "Unknown", 2, "2026-11-01T10:00:00Z"],
    ]);
    expect(s.activeBackend).toBeNull();
    expect(s.configRef).toEqual({ ...ref, hash: "sha256:aaa" });
    expect(s.fallbackCount).toBe(1);
  });

  it("keeps lastTransitionTime while a condition's status holds, and moves it when it changes", () => {
    const first: any = desiredStatus(policy(), result(true), { configMap: ref, xdsServer: false }, t0);
    const same: any = desiredStatus(policy(first), result(true), { configMap: ref, xdsServer: false }, t1);
    expect(same).toEqual(first);
    const broken: any = desiredStatus(policy(first), result(false), { configMap: ref, xdsServer: false }, t1);
    expect(ready(broken)).toMatchObject({
      status: "False",
      reason: "ServiceNotFound",
      lastTransitionTime: "2026-11-01T11:00:00Z",
    });
    expect(broken.conditions[0].lastTransitionTime).toBe("2026-11-01T10:00:00Z");
    expect(broken.configRef).toBeNull();
  });

  it("a backend with its own credential, and no xDS server: not programmed (the ConfigMap cannot carry it); with one, programmed", () => {
    const credentialed = { ...result(true), credentialed: ["api.openai.example"] };
    const files: any = desiredStatus(policy(), credentialed, { configMap: ref, xdsServer: false }, t0);
    const programmed = files.conditions.find((c: any) => c.type === "Programmed");
    expect(programmed).toMatchObject({ status: "False", reason: "CredentialsNeedXds" });
    expect(programmed.message).toContain("api.openai.example sends its own credential");
    expect(programmed.message).toContain("--xds-addr");
    expect(ready(files)).toMatchObject({ status: "False", reason: "CredentialsNeedXds" });
    const xds: any = desiredStatus(policy(), credentialed, { configMap: ref, xdsServer: true }, t0);
    expect(ready(xds)).toMatchObject({ status: "True" });
  });

  it("when the config is too large: a policy whose part changed is not programmed; an unchanged one is", () => {
    const notWritten = { reason: "ConfigTooLarge" as const, message: "too big" };
    const live: any = desiredStatus(policy(), result(true, "sha256:old"), { configMap: ref, xdsServer: false }, t0);
    const unchanged: any = desiredStatus(
      policy(live),
      result(true, "sha256:old"),
      { configMap: ref, notWritten, xdsServer: false },
      t1,
    );
    expect(ready(unchanged).status).toBe("True");
    const changed: any = desiredStatus(
      policy(live),
      result(true, "sha256:new"),
      { configMap: ref, notWritten, xdsServer: false },
      t1,
    );
    expect(changed.conditions.find((c: any) => c.type === "Programmed")).toMatchObject({
      status: "False",
      reason: "ConfigTooLarge",
      message: "too big",
    });
    expect(ready(changed)).toMatchObject({ status: "False", reason: "ConfigTooLarge" });
    expect(changed.configRef.hash).toBe("sha256:old"); // still what Envoy runs
  });

  // kstatus (what Flux waits with) reads Stalled=True as Failed, Ready=False as InProgress.
  // (Only the conditions named here: others, such as FallbackActive, are not this test's.)
  const OURS = ["Other", "Accepted", "ResolvedRefs", "Programmed", "Ready", "Stalled"];
  const ours = (s: any) => s.conditions.filter((c: any) => OURS.includes(c.type));
  const stalledOf = (s: any) => s.conditions.find((c: any) => c.type === "Stalled");

  it("a policy that is not accepted is Stalled, with Accepted's reason and message; once accepted, Stalled goes", () => {
    const message = "FallbackPolicy shop/old already governs Service shop/products:8080; the oldest policy wins.";
    const conflicted: PolicyResult = {
      ...result(false),
      backends: [],
      conditions: policyConditions({ accepted: false, reason: "Conflicted", message }, [], false),
    };
    const stalled: any = desiredStatus(policy(), conflicted, { configMap: ref, xdsServer: false }, t0);
    expect(ours(stalled).map((c: any) => [c.type, c.status, c.reason])).toEqual([
      ["Accepted", "False", "Conflicted"],
      ["ResolvedRefs", "Unknown", "NotAccepted"],
      ["Programmed", "False", "NotProgrammed"],
      ["Ready", "False", "Conflicted"],
      ["Stalled", "True", "Conflicted"],
    ]);
    expect(stalledOf(stalled)).toEqual({
      type: "Stalled",
      status: "True",
      observedGeneration: 2,
      lastTransitionTime: "2026-11-01T10:00:00Z",
      reason: "Conflicted",
      message,
    });

    const delivery = { configMap: ref, xdsServer: true, xds: { connected: 1, acked: 1, pending: 0 } };
    const accepted: any = desiredStatus(policy(stalled), result(true), delivery, t1);
    expect(ours(accepted).map((c: any) => [c.type, c.status])).toEqual(
      ["Accepted", "ResolvedRefs", "Programmed", "Ready"].map((t) => [t, "True"]),
    );
    expect(stalledOf(accepted)).toBeUndefined();
    // Unchanged once settled: no write.
    expect(desiredStatus(policy(accepted), result(true), delivery, t1)).toEqual(accepted);
  });

  it("keeps conditions it does not own where they are, and Ready from Accepted, ResolvedRefs and Programmed only", () => {
    const other = {
      type: "Other",
      status: "False" as const,
      observedGeneration: 2,
      lastTransitionTime: "2026-11-01T09:00:00Z",
      reason: "R",
      message: "m",
    };
    const s: any = desiredStatus(
      policy({ conditions: [other] }),
      result(true),
      { xdsServer: true, xds: { connected: 2, acked: 1, pending: 0 } },
      t0,
    );
    expect(ours(s).map((c: any) => c.type)).toEqual(["Other", "Accepted", "ResolvedRefs", "Programmed", "Ready"]);
    expect(s.conditions[0]).toEqual(other);
    expect(ready(s)).toMatchObject({ status: "False", reason: "NotAcknowledged" });
    expect(
      readyFrom([
        ...result(true).conditions.slice(0, 3),
        { type: "Stalled", status: "False", reason: "x", message: "y" },
      ]).status,
    ).toBe("True");
  });
});

describe("desiredStatus with the xDS server", () => {
  const programmed = (s: any) => s.conditions.find((c: any) => c.type === "Programmed");
  const over = (xds?: {
    connected: number;
    acked: number;
    pending?: number;
    rejected?: { node: string; resource: string; message: string };
  }) =>
    desiredStatus(
      policy(),
      result(true),
      { xdsServer: true, ...(xds ? { xds: { pending: 0, ...xds } } : {}) },
      t0,
    ) as any;

  it("is Programmed when every connected Envoy runs the policy, and says how many do", () => {
    const s = over({ connected: 2, acked: 2 });
    expect(programmed(s)).toMatchObject({ status: "True", reason: "Programmed" });
    expect(s.proxies).toEqual({ connected: 2, acked: 2 });
    expect(s.configRef).toEqual({ hash: "sha256:aaa" });
    expect(ready(s).status).toBe("True");
  });

  it("is Programmed with no Envoy connected, and says so", () => {
    const s = over();
    expect(programmed(s)).toMatchObject({ status: "True", message: expect.stringMatching(/No Envoy is connected/) });
    expect(s.proxies).toEqual({ connected: 0, acked: 0 });
  });

  it("is not Programmed (nor Ready) while an Envoy does not run the policy's current config", () => {
    const s = over({ connected: 2, acked: 1 });
    expect(programmed(s)).toMatchObject({
      status: "False",
      reason: "NotAcknowledged",
      message: "1 of 2 connected Envoys run this policy's current config.",
    });
    expect(ready(s)).toMatchObject({ status: "False", reason: "NotAcknowledged" });
  });

  it("is Rejected with Envoy's words when an Envoy rejected the policy's resources", () => {
    const s = over({
      connected: 1,
      acked: 0,
      rejected: { node: "gw-1", resource: "cluster shop/products/primary", message: "bad duration\n" },
    });
    expect(programmed(s)).toMatchObject({
      status: "False",
      reason: "Rejected",
      message: "Envoy gw-1 rejected cluster shop/products/primary: bad duration",
    });
    expect(ready(s)).toMatchObject({ status: "False", reason: "Rejected" });
  });

  it("leaves proxies out of a policy that is not programmed", () => {
    const s: any = desiredStatus(policy(), result(false), { xdsServer: true }, t0);
    expect(s.proxies).toBeNull();
    expect(programmed(s)).toMatchObject({ status: "False", reason: "NotProgrammed" });
  });
});

describe("the operator's ConfigMap", () => {
  const files = { "bootstrap.yaml": "b", "cds.yaml": "c" };

  it("counts keys and values in bytes, as the API server's limit does", () => {
    expect(configSize({ "a.yaml": "é" })).toBe(6 + 2);
  });

  it("holds only exactly its files, labels and hash", () => {
    const cm = configMapObject(ref, files, "h1");
    expect(holds(cm, files, "h1")).toBe(true);
    expect(holds(cm, files, "h2")).toBe(false);
    expect(holds({ ...cm, data: { ...files, "extra.yaml": "x" } }, files, "h1")).toBe(false);
    expect(holds({ ...cm, metadata: { ...cm.metadata, labels: {} } }, files, "h1")).toBe(false);
    expect(holds(undefined, files, "h1")).toBe(false);
  });

  it("updates away keys someone else added and restores edited ones, keeping others' labels", () => {
    const edited = {
      metadata: { name: "fallback-envoy", resourceVersion: "7", labels: { team: "edge" }, managedFields: [{}] },
      data: { "cds.yaml": "hacked", "extra.yaml": "x" },
      binaryData: { blob: "AA==" },
    };
    const update = configMapUpdate(edited, files, "h1");
    expect(update["data"]).toEqual(files);
    expect(update["binaryData"]).toBeUndefined();
    expect(update.metadata).toMatchObject({
      resourceVersion: "7",
      labels: { team: "edge", "app.kubernetes.io/managed-by": "fallback-operator" },
      annotations: { [HASH_ANNOTATION]: "h1" },
    });
    expect(update.metadata.managedFields).toBeUndefined();
    expect(holds({ ...update, metadata: { ...update.metadata } }, files, "h1")).toBe(true);
  });
});
