// `fallbackctl mcp --kubeconfig` on the real API server with the operator running: the SDK's
// own Client over stdio and over Streamable HTTP lists the tools and calls every one.
// Read-only (no --allow-writes): the write tools are absent and refused. With it, set_drain
// and apply_policy dry-run first, then write with field manager fallbackctl-mcp, record the
// reason as an annotation and an Event. A kubeconfig that may only read FallbackPolicies
// gets the API server's Forbidden as a clear tool error.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestNamespace, apply, getJson, kube } from "../../support/kubectl.ts";
import { conditionOf, startOperator, type RunningOperator } from "../../support/operator.ts";
import { until } from "../../support/poll.ts";
import { endpointSlice, service } from "../../support/objects.ts";
import { call, CLUSTER, httpSession, OFFLINE, stdioSession, WRITES, type Session } from "./harness.ts";

const kubeconfig = inject("kubeconfig");

let apps: string;
let operator: RunningOperator;
let reader: string;

const policyObject = (name: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: "fallback.dev/v1alpha1",
  kind: "FallbackPolicy",
  metadata: { name, namespace: apps },
  spec: {
    targetRef: { name, port: 8080 },
    fallbacks: [
      { service: { name: `${name}-cache`, port: 8080 } },
      { staticResponse: { status: 503, body: "degraded" } },
    ],
    retry: { attempts: 2, perTryTimeout: "500ms" },
    ...extra,
  },
});

const getPolicy = (name: string) => getJson(kubeconfig, ["fallbackpolicy", name, "-n", apps, "--show-managed-fields"]);
const readyPolicy = (name: string) =>
  until(`${name} Ready`, async () => {
    const p = await getPolicy(name);
    const c = conditionOf(p, "Ready");
    return c?.status === "True" && p.status.observedGeneration === p.metadata.generation && p;
  });

/** A kubeconfig with the token of a ServiceAccount that may get, list and watch FallbackPolicies in `namespace`, nothing else. */
async function readerKubeconfig(namespace: string): Promise<string> {
  await kube(kubeconfig, ["-n", namespace, "create", "serviceaccount", "mcp-reader"]);
  await kube(kubeconfig, [
    "-n",
    namespace,
    "create",
    "role",
    "fallbackpolicy-reader",
    "--verb=get,list,watch",
    "--resource=fallbackpolicies.fallback.dev",
  ]);
  await kube(kubeconfig, [
    "-n",
    namespace,
    "create",
    "rolebinding",
    "mcp-reader",
    "--role=fallbackpolicy-reader",
    `--serviceaccount=${namespace}:mcp-reader`,
  ]);
  const token = (await kube(kubeconfig, ["-n", namespace, "create", "token", "mcp-reader", "--duration=1h"])).trim();
  const view = JSON.parse(await kube(kubeconfig, ["config", "view", "--raw", "-o", "json"])) as {
    clusters: { cluster: Record<string, string> }[];
  };
  const path = join(mkdtempSync(join(tmpdir(), "mcp-reader-")), "kubeconfig");
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      "current-context": "reader",
      clusters: [{ name: "local", cluster: view.clusters[0]!.cluster }],
      users: [{ name: "mcp-reader", user: { token } }],
      contexts: [{ name: "reader", context: { cluster: "local", user: "mcp-reader", namespace } }],
    }),
  );
  return path;
}

beforeAll(async () => {
  apps = await createTestNamespace(kubeconfig, "mcp-apps");
  const config = await createTestNamespace(kubeconfig, "mcp-config");
  operator = await startOperator({ kubeconfig, configNamespace: config, watchNamespace: apps });
  const objects: object[] = [];
  for (const name of ["stdio", "http"]) {
    objects.push(
      service(apps, name),
      endpointSlice(apps, name, ["10.0.0.1", "10.0.0.2"]),
      service(apps, `${name}-cache`),
      endpointSlice(apps, `${name}-cache`, ["10.0.1.1"]),
      policyObject(name),
    );
  }
  objects.push(service(apps, "orders"), service(apps, "orders-cache"));
  await apply(kubeconfig, objects);
  await Promise.all([readyPolicy("stdio"), readyPolicy("http")]);
  reader = await readerKubeconfig(apps);
});

afterAll(async () => {
  await operator?.stop();
});

const transports = [
  ["stdio", (args: string[]) => stdioSession({ args })],
  ["Streamable HTTP", (args: string[]) => httpSession({ args, negotiation: "auto" })],
] as const;

describe.each(transports)("over %s", (transport, open) => {
  const name = transport === "stdio" ? "stdio" : "http";

  describe("read-only (--kubeconfig, no --allow-writes)", () => {
    let session: Session;
    beforeAll(async () => {
      session = await open(["--kubeconfig", kubeconfig]);
    });
    afterAll(async () => {
      await session?.close();
    });

    it("lists the offline and cluster tools; the write tools are absent, and refused when called", async () => {
      const { tools } = await session.client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual([...CLUSTER, ...OFFLINE].sort());
      for (const t of tools) expect(t.annotations, t.name).toMatchObject({ readOnlyHint: true });
      for (const tool of WRITES) {
        await expect(
          session.client.callTool({
            name: tool,
            arguments: { namespace: apps, name, backends: [name], reason: "try", yaml: "x" },
          }),
        ).rejects.toThrow(new RegExp(`Tool ${tool} not found`));
      }
      // Nothing was written.
      expect((await getPolicy(name)).spec.drain).toBeUndefined();
    });

    it("list_policies: Ready and its reasons, for one namespace or all", async () => {
      const r = await call(session, "list_policies", { namespace: apps });
      expect(r.isError).toBe(false);
      const row = r.data.policies.find((p: any) => p.name === name);
      expect(row).toMatchObject({
        namespace: apps,
        target: `${name}:8080`,
        fallbacks: 2,
        ready: { status: "True", reason: "Ready" },
        drained: [],
        stale: false,
      });
      // ConfigMap mode: no Envoy reports, so FallbackActive is Unknown and there is no active backend.
      expect(row.fallbackActive).toMatchObject({ status: "Unknown" });
      expect(row.activeBackend).toBeUndefined();
      expect(r.text).toContain(`${apps}/${name} -> ${name}:8080, 2 fallbacks: Ready=True`);
      const all = await call(session, "list_policies", {});
      expect(all.data.policies.some((p: any) => p.namespace === apps && p.name === name)).toBe(true);
    });

    it("get_policy: spec, status, recent Events and the explanation from the live EndpointSlices", async () => {
      const r = await call(session, "get_policy", { namespace: apps, name });
      expect(r.isError).toBe(false);
      expect(r.data.spec.targetRef).toEqual({ kind: "Service", name, port: 8080 });
      expect(conditionOf({ status: r.data.status }, "Ready")?.status).toBe("True");
      expect(r.data.events.map((e: any) => e.reason)).toContain("Ready");
      expect(r.data.explanation.order.map((b: any) => [b.name, b.description])).toEqual([
        [name, `Service ${apps}/${name} port 8080, 2 ready endpoints`],
        [`${name}-cache`, `Service ${apps}/${name}-cache port 8080, 1 ready endpoint`],
        ["static", 'the static answer 503 "degraded"'],
      ]);
      expect(r.text).toContain("Recent events:");
      expect(r.text).toContain("Worst-case wait:");
    });

    it("bad input: an unknown policy or namespace is a clear tool error, and the server keeps serving", async () => {
      const missing = await call(session, "get_policy", { namespace: apps, name: "nope" });
      expect(missing).toMatchObject({
        isError: true,
        text: `FallbackPolicy ${apps}/nope not found (list_policies shows the policies there are)`,
      });
      const empty = await call(session, "list_policies", { namespace: "no-such-namespace" });
      expect(empty).toMatchObject({ isError: false, text: "No FallbackPolicy in namespace no-such-namespace." });
      expect((await call(session, "get_policy", { namespace: apps, name })).isError).toBe(false);
    });
  });

  describe("with --allow-writes", () => {
    let session: Session;
    beforeAll(async () => {
      session = await open(["--kubeconfig", kubeconfig, "--allow-writes"]);
    });
    afterAll(async () => {
      await session?.close();
    });

    it("lists the write tools as destructive", async () => {
      const { tools } = await session.client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual([...CLUSTER, ...OFFLINE, ...WRITES].sort());
      for (const t of tools.filter((t) => WRITES.includes(t.name)))
        expect(t.annotations, t.name).toMatchObject({ readOnlyHint: false, destructiveHint: true });
    });

    it("set_drain: dry run, then the write; the reason as an annotation and an Event; the operator follows", async () => {
      const r = await call(session, "set_drain", {
        namespace: apps,
        name,
        backends: [name],
        reason: "maintenance of the primary's database",
      });
      expect(r.isError, r.text).toBe(false);
      expect(r.data).toMatchObject({
        before: [],
        after: [name],
        changed: true,
        dryRun: { drain: [name] },
        event: { recorded: true, reason: "DrainChanged" },
      });
      const stored = await getPolicy(name);
      expect(stored.spec.drain).toEqual([name]);
      expect(stored.metadata.annotations["fallback.dev/change-reason"]).toBe("maintenance of the primary's database");
      expect(stored.metadata.annotations["fallback.dev/changed-by"]).toBe("fallbackctl-mcp/set_drain");
      expect(
        stored.metadata.managedFields.some(
          (m: any) => m.manager === "fallbackctl-mcp" && JSON.stringify(m.fieldsV1).includes("f:drain"),
        ),
      ).toBe(true);
      // The operator reads it: the primary says drained.
      await until(
        "status.backends[0].drained",
        async () => (await getPolicy(name))?.status?.backends?.[0]?.drained === true,
      );
      const detail = await call(session, "get_policy", { namespace: apps, name });
      expect(detail.data.events.find((e: any) => e.reason === "DrainChanged")?.message).toContain(
        "maintenance of the primary's database",
      );
      expect(detail.data.explanation.order[0]).toMatchObject({ name, drained: true });

      const again = await call(session, "set_drain", { namespace: apps, name, backends: [name], reason: "again" });
      expect(again.data).toMatchObject({ changed: false, dryRun: null });

      const back = await call(session, "set_drain", {
        namespace: apps,
        name,
        backends: [],
        reason: "maintenance done",
      });
      expect(back.data).toMatchObject({ before: [name], after: [], changed: true });
      expect((await getPolicy(name)).spec.drain).toBeUndefined();
    });

    it("set_drain: a name that is no backend, or the static answer, is refused before anything is sent", async () => {
      const nope = await call(session, "set_drain", { namespace: apps, name, backends: ["products-db"], reason: "x" });
      expect(nope).toMatchObject({
        isError: true,
        text: `backends[0]: "products-db" is not a backend of FallbackPolicy ${apps}/${name}; its backends are ${name} and ${name}-cache`,
      });
      const stat = await call(session, "set_drain", { namespace: apps, name, backends: ["static"], reason: "x" });
      expect(stat.text).toMatch(/^backends\[0\]: the static answer cannot be drained/);
      const noReason = await call(session, "set_drain", { namespace: apps, name, backends: [name], reason: "   " });
      expect(noReason.text).toMatch(/^reason: required/);
      const unknown = await call(session, "set_drain", { namespace: apps, name: "nope", backends: [], reason: "x" });
      expect(unknown.text).toBe(`FallbackPolicy ${apps}/nope not found (list_policies shows the policies there are)`);
    });

    it("apply_policy: creates a policy after a dry run; the changes of an update; kubectl's fields need force", async () => {
      const orders = policyObject("orders");
      const created = await call(session, "apply_policy", {
        yaml: JSON.stringify(orders),
        reason: `orders get a fallback (${transport})`,
      });
      expect(created.isError, created.text).toBe(false);
      expect(created.data.policies[0]).toMatchObject({
        policy: `${apps}/orders`,
        event: { recorded: true, reason: "PolicyApplied" },
      });
      const p = await readyPolicy("orders");
      expect(p.metadata.annotations["fallback.dev/change-reason"]).toBe(`orders get a fallback (${transport})`);
      expect(p.metadata.managedFields.find((m: any) => m.operation === "Apply")?.manager).toBe("fallbackctl-mcp");

      // An update: the dry run says what changes.
      const update = { ...orders, spec: { ...orders.spec, retry: { attempts: 3, perTryTimeout: "250ms" } } };
      const updated = await call(session, "apply_policy", { yaml: JSON.stringify(update), reason: "faster failover" });
      expect(updated.isError, updated.text).toBe(false);
      const changes = updated.data.policies[0].changes.map((c: any) => [c.field, c.from, c.to]);
      expect(changes).toEqual(
        expect.arrayContaining([
          ["spec.retry.attempts", 2, 3],
          ["spec.retry.perTryTimeout", "500ms", "250ms"],
        ]),
      );
      expect((await getPolicy("orders")).spec.retry.attempts).toBe(3);

      // set_drain patches (its own entry of the same field manager): a later apply takes the
      // reason annotations over, and leaves spec.drain, which the YAML does not name, alone.
      expect(
        (
          await call(session, "set_drain", {
            namespace: apps,
            name: "orders",
            backends: ["orders"],
            reason: "drain orders",
          })
        ).isError,
      ).toBe(false);
      const reapplied = await call(session, "apply_policy", {
        yaml: JSON.stringify(update),
        reason: "the same spec again",
      });
      expect(reapplied.isError, reapplied.text).toBe(false);
      const afterReapply = await getPolicy("orders");
      expect(afterReapply.spec.drain).toEqual(["orders"]);
      expect(afterReapply.metadata.annotations["fallback.dev/change-reason"]).toBe("the same spec again");
      expect(
        (await call(session, "set_drain", { namespace: apps, name: "orders", backends: [], reason: "undrain orders" }))
          .isError,
      ).toBe(false);

      // A policy kubectl applied: its fields are kubectl's, so the dry run reports the conflict and nothing is written.
      const theirs = policyObject(name, { retry: { attempts: 1, perTryTimeout: "500ms" } });
      const conflict = await call(session, "apply_policy", { yaml: JSON.stringify(theirs), reason: "fewer retries" });
      expect(conflict.isError).toBe(true);
      expect(conflict.text).toBe(
        `FallbackPolicy ${apps}/${name}: Conflict (409): spec.retry.attempts (owned by kubectl-client-side-apply) would change, and that field belongs to another field manager: set force to take it over, or change it with the tool that owns it. The dry run failed: nothing applied.`,
      );
      expect(conflict.data.error.problems).toEqual([
        {
          object: `FallbackPolicy ${apps}/${name}`,
          field: "spec.retry.attempts",
          message: "owned by kubectl-client-side-apply",
        },
      ]);
      expect((await getPolicy(name)).spec.retry.attempts).toBe(2);
      const forced = await call(session, "apply_policy", {
        yaml: JSON.stringify(theirs),
        reason: "fewer retries",
        force: true,
      });
      expect(forced.isError, forced.text).toBe(false);
      expect((await getPolicy(name)).spec.retry.attempts).toBe(1);
    });

    it("apply_policy: only FallbackPolicies, only valid ones, nothing half-applied", async () => {
      const svc = await call(session, "apply_policy", {
        yaml: `apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: ${apps}}\n`,
        reason: "x",
      });
      expect(svc).toMatchObject({ isError: true });
      expect(svc.text).toContain(
        `v1/Service ${apps}/x: yaml document 1: apply_policy writes FallbackPolicy fallback.dev/v1alpha1 objects only`,
      );
      const bad = policyObject("bad", { retry: { attempts: -1 } });
      const invalid = await call(session, "apply_policy", { yaml: JSON.stringify(bad), reason: "x" });
      expect(invalid.text).toBe(`nothing applied:\nFallbackPolicy ${apps}/bad: spec.retry.attempts: must be >= 0`);
      expect(invalid.data.error.problems).toEqual([
        { object: `FallbackPolicy ${apps}/bad`, field: "spec.retry.attempts", message: "must be >= 0" },
      ]);
      // The CEL rules too, offline as on the API server: a drain name that is no backend.
      const cel = {
        ...policyObject(`cel-${name}`),
        spec: { ...policyObject(`cel-${name}`).spec, drain: ["elsewhere"] },
      };
      const rejected = await call(session, "apply_policy", { yaml: JSON.stringify(cel), reason: "x" });
      expect(rejected.isError).toBe(true);
      expect(rejected.text).toContain(
        `FallbackPolicy ${apps}/cel-${name}: spec.drain: each drain name must be a backend of this policy`,
      );
      // A dry run the API server refuses (no such namespace) stops every write, the valid policy before it included.
      const two = [
        policyObject(`first-${name}`),
        { ...policyObject(`second-${name}`), metadata: { name: `second-${name}`, namespace: "no-such-namespace" } },
      ];
      const stopped = await call(session, "apply_policy", {
        yaml: two.map((o) => JSON.stringify(o)).join("\n---\n"),
        reason: "x",
      });
      expect(stopped.isError).toBe(true);
      expect(stopped.text).toMatch(
        new RegExp(
          `^FallbackPolicy no-such-namespace/second-${name}: NotFound \\(404\\): namespaces "no-such-namespace" not found\\. The dry run failed \\(1 of 2 had passed\\): nothing applied\\.$`,
        ),
      );
      for (const n of ["bad", `cel-${name}`, `first-${name}`]) expect(await getPolicy(n), n).toBeUndefined();
      const broken = await call(session, "apply_policy", { yaml: "kind: [", reason: "x" });
      expect(broken.text).toMatch(/^yaml: line 1, column \d+: /);
    });
  });

  describe("with a kubeconfig that may only read FallbackPolicies", () => {
    let session: Session;
    beforeAll(async () => {
      session = await open(["--kubeconfig", reader, "--allow-writes"]);
    });
    afterAll(async () => {
      await session?.close();
    });

    it("reads policies; Events and Services it may not read are said, not fatal", async () => {
      const list = await call(session, "list_policies", {});
      // Not even list at the cluster scope: the API server's Forbidden, as a tool error.
      expect(list).toMatchObject({ isError: true });
      expect(list.text).toMatch(
        /^FallbackPolicies in all namespaces: Forbidden \(403\): .*system:serviceaccount:.*:mcp-reader.* cannot list resource "fallbackpolicies"/,
      );
      const mine = await call(session, "list_policies", { namespace: apps });
      expect(mine.isError).toBe(false);
      const detail = await call(session, "get_policy", { namespace: apps, name });
      expect(detail.isError).toBe(false);
      expect(detail.data.eventsError).toMatch(/Forbidden \(403\)/);
      expect(detail.data.explanationError).toMatch(/Forbidden \(403\).*needs get on services/);
    });

    it("apply_policy and set_drain get the API server's Forbidden as a clear tool error; nothing changes", async () => {
      const before = await getPolicy(name);
      const applied = await call(session, "apply_policy", {
        yaml: JSON.stringify(policyObject(name, { retry: { attempts: 0 } })),
        reason: "x",
        force: true,
      });
      expect(applied.isError).toBe(true);
      expect(applied.text).toMatch(
        new RegExp(
          `^FallbackPolicy ${apps}/${name}: Forbidden \\(403\\): fallbackpolicies.fallback.dev "${name}" is forbidden: User "system:serviceaccount:${apps}:mcp-reader" cannot patch resource "fallbackpolicies" in API group "fallback.dev" in the namespace "${apps}"`,
        ),
      );
      expect(applied.text).toContain("nothing applied");
      const drained = await call(session, "set_drain", {
        namespace: apps,
        name,
        backends: [name, `${name}-cache`],
        reason: "x",
      });
      expect(drained.isError).toBe(true);
      expect(drained.text).toMatch(/Forbidden \(403\): .*cannot patch resource "fallbackpolicies"/);
      const after = await getPolicy(name);
      expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    });
  });
});
