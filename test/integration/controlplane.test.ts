// Smoke tests of the shared control plane: a real kube-apiserver, ready, with RBAC on.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { createTestNamespace, kubectl } from "../support/kubectl.ts";

const kubeconfig = inject("kubeconfig");

describe("control plane", () => {
  it("answers /readyz", async () => {
    const r = await kubectl(kubeconfig, ["get", "--raw", "/readyz"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe("ok");
  });

  it("reports a Kubernetes 1.35 version", async () => {
    const r = await kubectl(kubeconfig, ["get", "--raw", "/version"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      major: "1",
      minor: "35",
      gitVersion: expect.stringMatching(/^v1\.35\./),
    });
  });

  it("has the default namespace", async () => {
    const r = await kubectl(kubeconfig, ["get", "ns", "default", "-o", "jsonpath={.status.phase}"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("Active");
  });

  it("enforces RBAC: a fresh ServiceAccount may not list secrets cluster-wide", async () => {
    const ns = await createTestNamespace(kubeconfig, "rbac");
    // No controller-manager runs, so no ServiceAccount exists until we create it.
    const sa = await kubectl(kubeconfig, ["-n", ns, "create", "serviceaccount", "nobody"]);
    expect(sa.code, sa.stderr).toBe(0);
    const token = await kubectl(kubeconfig, ["-n", ns, "create", "token", "nobody"]);
    expect(token.code, token.stderr).toBe(0);

    // A kubeconfig with the same server and CA, but the token instead of the admin cert.
    const view = await kubectl(kubeconfig, ["config", "view", "--raw", "-o", "json"]);
    const cluster = JSON.parse(view.stdout).clusters[0].cluster;
    const saKubeconfig = join(mkdtempSync(join(tmpdir(), "sa-kubeconfig-")), "config");
    writeFileSync(
      saKubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        "current-context": "sa",
        clusters: [{ name: "local", cluster }],
        users: [{ name: "nobody", user: { token: token.stdout.trim() } }],
        contexts: [{ name: "sa", context: { cluster: "local", user: "nobody" } }],
      }),
    );

    const whoami = await kubectl(saKubeconfig, ["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    expect(whoami.code, whoami.stderr).toBe(0);
    expect(whoami.stdout).toBe(`system:serviceaccount:${ns}:nobody`);
    const denied = await kubectl(saKubeconfig, ["get", "secrets", "-A"]);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain(`User "system:serviceaccount:${ns}:nobody" cannot list resource "secrets"`);
    rmSync(dirname(saKubeconfig), { recursive: true, force: true });

    const canI = await kubectl(kubeconfig, [
      "auth",
      "can-i",
      "list",
      "secrets",
      "-A",
      "--as",
      `system:serviceaccount:${ns}:nobody`,
    ]);
    expect(canI.stdout.trim()).toBe("no");
  });

  it("creates a test namespace", async () => {
    const ns = await createTestNamespace(kubeconfig, "Smoke_Test");
    expect(ns).toMatch(/^smoke-test-[0-9a-f]{8}$/);
    const r = await kubectl(kubeconfig, ["get", "ns", ns, "-o", "jsonpath={.status.phase}"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("Active");
  });
});
