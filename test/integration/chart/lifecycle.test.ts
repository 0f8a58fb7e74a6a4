// helm install / upgrade / uninstall of the chart on the real API server. There is no
// kubelet here, so pods never run: these tests prove what Helm and the API server accept
// and keep; the operator itself runs in rbac.test.ts.
import { randomBytes } from "node:crypto";
import { describe, expect, inject, it } from "vitest";
import { createTestNamespace, kubectl, kube } from "../../support/kubectl.ts";
import { chartDir } from "../../support/helm.ts";
import { getObject, helm, releaseManifest, shopObjects } from "./helm.ts";

const kubeconfig = inject("kubeconfig");
const CRD = "fallbackpolicies.fallback.dev";

async function names(kind: string, ns: string | undefined, release: string): Promise<string[]> {
  const scope = ns ? ["-n", ns] : [];
  const out = await kube(kubeconfig, [
    "get",
    kind,
    ...scope,
    "-l",
    `app.kubernetes.io/instance=${release}`,
    "-o",
    "jsonpath={.items[*].metadata.name}",
  ]);
  return out.split(/\s+/).filter(Boolean).sort();
}

describe("helm install, upgrade and uninstall", () => {
  it("installs, upgrades and uninstalls, keeping the CRD and existing FallbackPolicies", async () => {
    const ns = await createTestNamespace(kubeconfig, "chart-life");
    const apps = await createTestNamespace(kubeconfig, "chart-apps");
    const release = `life-${randomBytes(3).toString("hex")}`;
    const full = `${release}-fallback-operator`;

    // Install. The CRD comes from crds/ (or is already there from another test: Helm skips it).
    const installed = await helm(kubeconfig, ["install", release, chartDir, "-n", ns]);
    expect(installed.code, installed.stderr).toBe(0);
    expect(installed.stdout).toContain(`${full}-xds.${ns}.svc:18000`);
    await kube(kubeconfig, ["wait", "--for=condition=Established", `crd/${CRD}`, "--timeout=30s"]);

    const deployment = await getObject(kubeconfig, ["deployment", full, "-n", ns]);
    expect(deployment?.spec.replicas).toBe(1);
    expect(deployment?.spec.template.spec.containers[0].args).toEqual(
      expect.arrayContaining(["--leader-elect", "--config-output=none", "--xds-addr=0.0.0.0:18000"]),
    );
    expect(await names("serviceaccount", ns, release)).toEqual([full]);
    expect(await names("clusterrole", undefined, release)).toEqual([full]);
    expect(await names("clusterrolebinding", undefined, release)).toEqual([full]);
    // Serving xDS: no ConfigMap to write, so no ConfigMap Role.
    expect(await names("role", ns, release)).toEqual([`${full}-leader-election`]);
    expect(await names("service", ns, release)).toEqual([`${full}-metrics`, `${full}-xds`]);
    expect(await names("secret", ns, release)).toEqual([`${full}-xds-client`, `${full}-xds-server`]);
    expect(await names("networkpolicy", ns, release)).toEqual([full]);
    expect(await names("poddisruptionbudget", ns, release)).toEqual([]);
    const certs = async () => ({
      server: (await getObject(kubeconfig, ["secret", `${full}-xds-server`, "-n", ns]))!.data,
      client: (await getObject(kubeconfig, ["secret", `${full}-xds-client`, "-n", ns]))!.data,
      checksum: (await getObject(kubeconfig, ["deployment", full, "-n", ns]))!.spec.template.metadata.annotations[
        "checksum/xds-tls"
      ],
    });
    const firstCerts = await certs();
    expect(firstCerts.server["ca.crt"]).toBe(firstCerts.client["ca.crt"]);

    // A policy created while the release exists (validated by the CRD's schema and CEL rules).
    await kube(kubeconfig, ["apply", "-f", "-"], shopObjects(apps));
    expect(await getObject(kubeconfig, ["fallbackpolicy", "products", "-n", apps])).toBeDefined();

    // Upgrade: three replicas, one watched namespace, the Envoy gateway.
    const upgraded = await helm(kubeconfig, [
      "upgrade",
      release,
      chartDir,
      "-n",
      ns,
      "--set",
      "replicaCount=3",
      "--set",
      "leaderElection.enabled=false",
      "--set",
      `watchNamespace=${apps}`,
      "--set",
      "envoy.enabled=true",
    ]);
    expect(upgraded.code, upgraded.stderr).toBe(0);
    const up = await getObject(kubeconfig, ["deployment", full, "-n", ns]);
    expect(up?.spec.replicas).toBe(3);
    expect(up?.spec.template.spec.containers[0].args).toEqual(
      expect.arrayContaining(["--leader-elect", `--watch-namespace=${apps}`]),
    );
    expect(await names("poddisruptionbudget", ns, release)).toEqual([full]);
    // The ClusterRole gave way to a Role in the watched namespace.
    expect(await names("clusterrole", undefined, release)).toEqual([]);
    expect(await names("clusterrolebinding", undefined, release)).toEqual([]);
    expect(await names("role", apps, release)).toEqual([full]);
    expect(await names("rolebinding", apps, release)).toEqual([full]);
    const envoy = await getObject(kubeconfig, ["deployment", `${full}-envoy`, "-n", ns]);
    const mount = envoy?.spec.template.spec.containers[0].volumeMounts.find(
      (m: { name: string }) => m.name === "config",
    );
    expect(mount).toEqual({ name: "config", mountPath: "/etc/envoy/fallback", readOnly: true });
    expect(envoy?.spec.template.spec.volumes.find((v: { name: string }) => v.name === "config").configMap.name).toBe(
      `${full}-envoy-bootstrap`,
    );
    expect(await names("configmap", ns, release)).toEqual([`${full}-envoy-bootstrap`]);
    expect(await names("service", ns, release)).toEqual([`${full}-envoy`, `${full}-metrics`, `${full}-xds`]);
    // The upgrade kept the generated certificates (looked up, not made again), so the pods keep theirs.
    expect(await certs()).toEqual(firstCerts);

    // A wrong value type is refused by the schema, and the release stays as it was.
    const refused = await helm(kubeconfig, [
      "upgrade",
      release,
      chartDir,
      "-n",
      ns,
      "--reuse-values",
      "--set-string",
      "replicaCount=three",
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/replicaCount.*want integer/);
    expect((await getObject(kubeconfig, ["deployment", full, "-n", ns]))?.spec.replicas).toBe(3);

    // Downgrade to one replica: the PDB goes.
    const down = await helm(kubeconfig, [
      "upgrade",
      release,
      chartDir,
      "-n",
      ns,
      "--reuse-values",
      "--set",
      "replicaCount=1",
    ]);
    expect(down.code, down.stderr).toBe(0);
    expect(await names("poddisruptionbudget", ns, release)).toEqual([]);
    const history = await helm(kubeconfig, ["history", release, "-n", ns, "-o", "json"]);
    expect((JSON.parse(history.stdout) as Array<{ status: string }>).map((h) => h.status)).toEqual([
      "superseded",
      "superseded",
      "deployed",
    ]);

    // Uninstall: everything of the release goes; the CRD and the policy stay.
    const manifest = await releaseManifest(kubeconfig, release, ns);
    expect(manifest.some((o) => o.kind === "CustomResourceDefinition")).toBe(false);
    const uninstalled = await helm(kubeconfig, ["uninstall", release, "-n", ns, "--wait", "--timeout", "60s"]);
    expect(uninstalled.code, uninstalled.stderr).toBe(0);
    for (const o of manifest) {
      const where = o.metadata.namespace ? ["-n", o.metadata.namespace] : [];
      expect(
        await getObject(kubeconfig, [o.kind, o.metadata.name, ...where]),
        `${o.kind}/${o.metadata.name} is gone`,
      ).toBeUndefined();
    }
    expect(await getObject(kubeconfig, ["crd", CRD])).toBeDefined();
    const policy = await getObject(kubeconfig, ["fallbackpolicy", "products", "-n", apps]);
    expect(policy?.spec.targetRef.name).toBe("products");
    expect((await helm(kubeconfig, ["status", release, "-n", ns])).code).not.toBe(0);
  });

  it("refuses an install with a wrong value type and creates no release objects", async () => {
    const ns = await createTestNamespace(kubeconfig, "chart-bad");
    const release = `bad-${randomBytes(3).toString("hex")}`;
    const r = await helm(kubeconfig, ["install", release, chartDir, "-n", ns, "--set-string", "replicaCount=three"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/values don't meet the specifications of the schema/);
    const left = await kubectl(kubeconfig, [
      "get",
      "all,serviceaccount,role,rolebinding",
      "-n",
      ns,
      "-l",
      `app.kubernetes.io/instance=${release}`,
      "-o",
      "name",
    ]);
    expect(left.stdout.trim()).toBe("");
  });

  it("installs with the config ConfigMap in another namespace: the Roles and the gateway go there", async () => {
    const ns = await createTestNamespace(kubeconfig, "chart-ops");
    const edge = await createTestNamespace(kubeconfig, "chart-edge");
    const release = `edge-${randomBytes(3).toString("hex")}`;
    const full = `${release}-fallback-operator`;
    const r = await helm(kubeconfig, [
      "install",
      release,
      chartDir,
      "-n",
      ns,
      "--set",
      `config.namespace=${edge}`,
      "--set",
      "config.name=gw",
      "--set",
      "envoy.enabled=true",
      "--set",
      "envoy.configSource=configmap",
    ]);
    expect(r.code, r.stderr).toBe(0);
    // The ConfigMap Role where the ConfigMap goes, the Lease Role where the operator keeps its Lease.
    expect(await names("role", edge, release)).toEqual([`${full}-config`, `${full}-leader-election`]);
    expect(await names("role", ns, release)).toEqual([]);
    const envoy = await getObject(kubeconfig, ["deployment", `${full}-envoy`, "-n", edge]);
    expect(envoy?.spec.template.spec.volumes.find((v: { name: string }) => v.name === "config").configMap.name).toBe(
      "gw",
    );
    expect((await helm(kubeconfig, ["uninstall", release, "-n", ns])).code).toBe(0);
    expect(await names("role", edge, release)).toEqual([]);
  });

  it("installs the gateway on xDS in another namespace: its bootstrap and client certificate go there", async () => {
    const ns = await createTestNamespace(kubeconfig, "chart-xops");
    const edge = await createTestNamespace(kubeconfig, "chart-xedge");
    const release = `xedge-${randomBytes(3).toString("hex")}`;
    const full = `${release}-fallback-operator`;
    const r = await helm(kubeconfig, [
      "install",
      release,
      chartDir,
      "-n",
      ns,
      "--set",
      `config.namespace=${edge}`,
      "--set",
      "envoy.enabled=true",
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(await names("secret", ns, release)).toEqual([`${full}-xds-server`]);
    expect(await names("secret", edge, release)).toEqual([`${full}-xds-client`]);
    expect(await names("configmap", edge, release)).toEqual([`${full}-envoy-bootstrap`]);
    const policy = await getObject(kubeconfig, ["networkpolicy", full, "-n", ns]);
    expect(policy?.spec.ingress[0].from[0].namespaceSelector.matchLabels).toEqual({
      "kubernetes.io/metadata.name": edge,
    });
    expect((await helm(kubeconfig, ["uninstall", release, "-n", ns])).code).toBe(0);
    expect(await names("secret", edge, release)).toEqual([]);
  });
});
