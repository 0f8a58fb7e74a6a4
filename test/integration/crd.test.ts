// The CRD on the real API server: it installs, carries descriptions, printer columns and
// defaults, and rejects exactly what the offline validator rejects, on the same field.
import { resolve } from "node:path";
import { stringify } from "yaml";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { validatePolicy } from "../../operator/src/api/validate.ts";
import { createTestNamespace, kubectl } from "../support/kubectl.ts";
import { EXAMPLES_DIR, invalidFixtures } from "../support/fixtures.ts";

const kubeconfig = inject("kubeconfig");
const CRD = resolve(import.meta.dirname, "../../crds/fallback.dev_fallbackpolicies.yaml");
let ns: string;

beforeAll(async () => {
  const apply = await kubectl(kubeconfig, ["apply", "-f", CRD]);
  expect(apply.code, apply.stderr).toBe(0);
  ns = await createTestNamespace(kubeconfig, "crd");
});

describe("FallbackPolicy CRD on the real API server", () => {
  it("becomes Established", async () => {
    const wait = await kubectl(kubeconfig, [
      "wait",
      "--for=condition=Established",
      "crd/fallbackpolicies.fallback.dev",
      "--timeout=60s",
    ]);
    expect(wait.code, wait.stderr).toBe(0);
  });

  it.each(invalidFixtures().map((f) => [f.name, f] as const))(
    "rejects %s on its field, as fallbackctl does",
    async (_, fixture) => {
      const offline = validatePolicy(fixture.object);
      expect(offline.ok ? [] : offline.errors.map((e) => e.path)).toContain(fixture.field);

      const applied = await kubectl(kubeconfig, ["apply", "-n", ns, "-f", "-"], { input: fixture.text });
      expect(applied.code).not.toBe(0);
      // Server messages name the field as `spec.x.y:` or, for unknown fields, "spec.x.y".
      expect(applied.stderr).toMatch(new RegExp(`(${escape(fixture.field)}:|"${escape(fixture.field)}")`));
    },
  );

  it("accepts the examples", async () => {
    for (const namespace of ["shop", "ai"]) await kubectl(kubeconfig, ["create", "namespace", namespace]);
    const applied = await kubectl(kubeconfig, ["apply", "-f", EXAMPLES_DIR]);
    expect(applied.code, applied.stderr).toBe(0);
  });

  it("fills in the same defaults as the offline validator", async () => {
    const minimal = {
      apiVersion: "fallback.dev/v1alpha1",
      kind: "FallbackPolicy",
      metadata: { name: "minimal", namespace: ns },
      spec: {
        targetRef: { name: "products", port: 8080 },
        fallbacks: [{ external: { host: "api.example", port: 443 } }, { staticResponse: {} }],
      },
    };
    const created = await kubectl(kubeconfig, ["create", "-o", "json", "-f", "-"], { input: stringify(minimal) });
    expect(created.code, created.stderr).toBe(0);
    const offline = validatePolicy(minimal);
    expect(offline.ok && offline.policy.spec).toEqual(JSON.parse(created.stdout).spec);
  });

  it("explains every field with its description", async () => {
    const explain = await kubectl(kubeconfig, ["explain", "fallbackpolicy.spec.retry.attempts"]);
    expect(explain.code, explain.stderr).toBe(0);
    expect(explain.stdout).toContain("Retries after the first try; 0 disables retries.");
    const fallbacks = await kubectl(kubeconfig, ["explain", "fbp.spec.fallbacks"]);
    expect(fallbacks.stdout).toContain("staticResponse");
  });

  it("shows the printer columns in kubectl get", async () => {
    const get = await kubectl(kubeconfig, ["get", "fbp", "-n", ns]);
    expect(get.code, get.stderr).toBe(0);
    expect(get.stdout.split("\n")[0]!.split(/\s+/)).toEqual([
      "NAME",
      "TARGET",
      "FALLBACKS",
      "READY",
      "REASON",
      "ACTIVE",
      "AGE",
    ]);
    expect(get.stdout).toMatch(/minimal\s+products/);
  });

  it("is found by its category", async () => {
    const get = await kubectl(kubeconfig, ["get", "fallback", "-n", ns, "-o", "name"]);
    expect(get.stdout).toContain("fallbackpolicy.fallback.dev/minimal");
  });
});

function escape(text: string) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
