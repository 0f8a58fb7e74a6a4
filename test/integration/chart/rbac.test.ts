// The chart's RBAC on the real API server (RBAC authorization on): the ServiceAccount may do
// exactly what the operator needs and nothing else (ConfigMaps only when it writes one); then
// the real operator process in the ConfigMap mode, run with a token of that ServiceAccount,
// brings a policy to Ready without one `forbidden` (xds.test.ts runs it in the xDS mode).
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestNamespace, kubectl, kube } from "../../support/kubectl.ts";
import { freePort } from "../../support/ports.ts";
import { operatorBin, repoRoot } from "../../support/paths.ts";
import { chartDir } from "../../support/helm.ts";
import { getObject, helm, shopObjects, tokenKubeconfig } from "./helm.ts";

const kubeconfig = inject("kubeconfig");

async function canI(user: string, args: string[]): Promise<boolean> {
  const r = await kubectl(kubeconfig, ["auth", "can-i", ...args, "--as", user]);
  const answer = r.stdout.trim();
  if (answer !== "yes" && answer !== "no") throw new Error(`kubectl auth can-i ${args.join(" ")}: ${r.stderr}`);
  return answer === "yes";
}

interface Install {
  ns: string;
  apps: string;
  other: string;
  release: string;
  user: string;
  sa: string;
}

async function install(prefix: string, set: string[] = [], withApps = true): Promise<Install> {
  const ns = await createTestNamespace(kubeconfig, `${prefix}-ops`);
  const apps = withApps ? await createTestNamespace(kubeconfig, `${prefix}-apps`) : ns;
  const other = await createTestNamespace(kubeconfig, `${prefix}-other`);
  const release = `${prefix}-${randomBytes(3).toString("hex")}`;
  const sa = `${release}-fallback-operator`;
  const r = await helm(kubeconfig, [
    "install",
    release,
    chartDir,
    "-n",
    ns,
    ...set.flatMap((s) => ["--set", s.replace("$APPS", apps)]),
  ]);
  if (r.code !== 0) throw new Error(`helm install: ${r.stderr}`);
  return { ns, apps, other, release, sa, user: `system:serviceaccount:${ns}:${sa}` };
}

describe("the chart's ServiceAccount, watching all namespaces, serving xDS (the default)", () => {
  let t: Install;
  beforeAll(async () => {
    t = await install("rbac");
  });

  it("may do what the operator needs", async () => {
    const allowed: string[][] = [
      ["list", "fallbackpolicies.fallback.dev", "-A"],
      ["watch", "fallbackpolicies.fallback.dev", "-A"],
      ["patch", "fallbackpolicies.fallback.dev", "--subresource=status", "-n", t.apps],
      ["list", "services", "-A"],
      ["watch", "endpointslices.discovery.k8s.io", "-A"],
      ["create", "events.events.k8s.io", "-n", t.apps],
      ["create", "events", "-n", t.apps],
      ["create", "leases.coordination.k8s.io", "-n", t.ns],
      ["update", "leases.coordination.k8s.io", "-n", t.ns],
      // Credentials (on by default): read-only.
      ["list", "secrets", "-A"],
      ["watch", "secrets", "-A"],
    ];
    for (const args of allowed) expect(await canI(t.user, args), args.join(" ")).toBe(true);
  });

  it("may not do anything else", async () => {
    const denied: string[][] = [
      ["create", "secrets", "-n", t.apps],
      ["update", "secrets", "-n", t.apps],
      ["delete", "secrets", "-n", t.apps],
      ["delete", "fallbackpolicies.fallback.dev", "-n", t.apps],
      // Only the status is the operator's to write: it sets no finalizer and edits no spec.
      ["patch", "fallbackpolicies.fallback.dev", "-n", t.apps],
      ["update", "fallbackpolicies.fallback.dev", "-n", t.apps],
      ["update", "fallbackpolicies.fallback.dev", "--subresource=finalizers", "-n", t.apps],
      ["create", "fallbackpolicies.fallback.dev", "-n", t.apps],
      ["update", "services", "-n", t.apps],
      // It writes no ConfigMap when it serves xDS.
      ["create", "configmaps", "-n", t.ns],
      ["list", "configmaps", "-n", t.ns],
      ["update", "configmaps/fallback-envoy", "-n", t.ns],
      ["get", "configmaps/someone-elses", "-n", t.ns],
      ["create", "configmaps", "-n", t.other],
      ["create", "leases.coordination.k8s.io", "-n", t.other],
      ["delete", "leases.coordination.k8s.io", "-n", t.ns],
      ["create", "pods", "-n", t.ns],
      ["create", "rolebindings.rbac.authorization.k8s.io", "-n", t.ns],
      ["create", "serviceaccounts/token", "-n", t.ns],
      ["impersonate", "serviceaccounts", "-n", t.ns],
    ];
    for (const args of denied) expect(await canI(t.user, args), args.join(" ")).toBe(false);
  });
});

describe("the chart's ServiceAccount in the ConfigMap mode", () => {
  it("may write the one ConfigMap in the config namespace, and no other", async () => {
    const t = await install("rbaccm", ["xds.enabled=false", "credentials.enabled=false"]);
    const allowed: string[][] = [
      ["create", "configmaps", "-n", t.ns],
      ["list", "configmaps", "-n", t.ns],
      ["watch", "configmaps", "-n", t.ns],
      ["get", "configmaps/fallback-envoy", "-n", t.ns],
      ["update", "configmaps/fallback-envoy", "-n", t.ns],
      ["patch", "configmaps/fallback-envoy", "-n", t.ns],
    ];
    for (const args of allowed) expect(await canI(t.user, args), args.join(" ")).toBe(true);
    const denied: string[][] = [
      ["update", "configmaps/someone-elses", "-n", t.ns],
      ["get", "configmaps/someone-elses", "-n", t.ns],
      ["delete", "configmaps/fallback-envoy", "-n", t.ns],
      ["create", "configmaps", "-n", t.other],
      ["get", "secrets", "-n", t.ns],
    ];
    for (const args of denied) expect(await canI(t.user, args), args.join(" ")).toBe(false);
  });
});

describe("the chart's ServiceAccount, with watchNamespace", () => {
  it("reaches policies, Services and EndpointSlices of that namespace only", async () => {
    const t = await install("rbacns", ["watchNamespace=$APPS"]);
    expect(await canI(t.user, ["list", "fallbackpolicies.fallback.dev", "-n", t.apps])).toBe(true);
    expect(await canI(t.user, ["patch", "fallbackpolicies.fallback.dev", "--subresource=status", "-n", t.apps])).toBe(
      true,
    );
    expect(await canI(t.user, ["watch", "endpointslices.discovery.k8s.io", "-n", t.apps])).toBe(true);
    expect(await canI(t.user, ["list", "fallbackpolicies.fallback.dev", "-A"])).toBe(false);
    expect(await canI(t.user, ["list", "fallbackpolicies.fallback.dev", "-n", t.other])).toBe(false);
    expect(await canI(t.user, ["list", "services", "-n", t.other])).toBe(false);
    expect(await canI(t.user, ["create", "events.events.k8s.io", "-n", t.other])).toBe(false);
  });
});

describe.skipIf(!existsSync(operatorBin))(
  "the operator process with the chart's ServiceAccount token, in the ConfigMap mode",
  () => {
    let t: Install;
    let operator: ChildProcess | undefined;
    let log = "";
    let saKubeconfig = "";
    let health = 0;

    beforeAll(async () => {
      t = await install("rbacrun", ["xds.enabled=false"]);
      const token = (await kube(kubeconfig, ["-n", t.ns, "create", "token", t.sa, "--duration=1h"])).trim();
      saKubeconfig = await tokenKubeconfig(kubeconfig, token, t.sa);
      const whoami = await kube(saKubeconfig, ["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
      expect(whoami).toBe(t.user);

      // The same arguments the chart's Deployment passes (see templates/deployment.yaml).
      const deployment = await getObject(kubeconfig, ["deployment", t.sa, "-n", t.ns]);
      const chartArgs = deployment!.spec.template.spec.containers[0].args as string[];
      health = await freePort();
      const metrics = await freePort();
      const args = chartArgs.map((a) =>
        a.startsWith("--health-addr=")
          ? `--health-addr=127.0.0.1:${health}`
          : a.startsWith("--metrics-addr=")
            ? `--metrics-addr=127.0.0.1:${metrics}`
            : a,
      );
      operator = spawn(process.execPath, [operatorBin, "--kubeconfig", saKubeconfig, ...args], {
        cwd: repoRoot,
        // What the chart's Deployment sets from the downward API.
        env: { ...process.env, KUBECONFIG: saKubeconfig, POD_NAME: `${t.sa}-0`, POD_NAMESPACE: t.ns },
        stdio: ["ignore", "pipe", "pipe"],
      });
      operator.stdout!.setEncoding("utf8").on("data", (s: string) => (log += s));
      operator.stderr!.setEncoding("utf8").on("data", (s: string) => (log += s));
    }, 120_000);

    afterAll(async () => {
      if (operator && operator.exitCode === null && operator.signalCode === null) {
        operator.kill("SIGTERM");
        await new Promise((r) => operator!.once("exit", r));
      }
      if (saKubeconfig) rmSync(dirname(saKubeconfig), { recursive: true, force: true });
    });

    it("brings a FallbackPolicy to Ready and writes the ConfigMap, with no forbidden in its log", async () => {
      await kube(kubeconfig, ["apply", "-f", "-"], shopObjects(t.apps));
      const ready = await kubectl(
        kubeconfig,
        ["-n", t.apps, "wait", "fallbackpolicy/products", "--for=condition=Ready", "--timeout=60s"],
        { timeoutMs: 90_000 },
      );
      expect(ready.code, `${ready.stderr}\n--- operator log ---\n${log}`).toBe(0);

      const cm = await getObject(kubeconfig, ["configmap", "fallback-envoy", "-n", t.ns]);
      expect(Object.keys(cm?.data ?? {}).sort()).toEqual(["bootstrap.yaml", "cds.yaml", "lds.yaml"]);
      expect(cm!.data["lds.yaml"]).toContain("products");

      const healthz = await fetch(`http://127.0.0.1:${health}/healthz`);
      expect(healthz.status).toBe(200);
      const readyz = await fetch(`http://127.0.0.1:${health}/readyz`);
      expect(readyz.status).toBe(200);
      // The Lease of leader election, in the release namespace.
      const leases = await kube(kubeconfig, ["get", "leases", "-n", t.ns, "-o", "name"]);
      expect(leases.trim()).not.toBe("");

      expect(log).not.toMatch(/forbidden/i);
      expect(operator!.exitCode).toBeNull();
    });
  },
);
