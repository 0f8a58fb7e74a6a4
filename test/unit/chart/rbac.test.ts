// RBAC is least privilege: exactly the verbs the operator needs, no wildcards, no Secrets,
// ConfigMap access only when the operator writes its ConfigMap and then limited to that one by
// name, cluster scope only when watching all, Leases only with leader election.
import { describe, expect, it } from "vitest";
import { NAMESPACE, ofKind, one, template, type K8sObject, type Rendered, type Values } from "./helm.ts";

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

const FULLNAME = "fo-fallback-operator";
const combos: Record<string, Values> = {
  default: {},
  "watchNamespace set": { watchNamespace: "apps" },
  "config elsewhere": { "config.namespace": "edge", "config.name": "gw" },
  "three replicas without leaderElection.enabled": { replicaCount: 3, "leaderElection.enabled": false },
  "leader election off": { "leaderElection.enabled": false },
  "everything on": { replicaCount: 2, "envoy.enabled": true, "metrics.serviceMonitor.enabled": true },
  "ConfigMap-only mode": { "xds.enabled": false },
  "ConfigMap-only mode, config elsewhere": { "xds.enabled": false, "config.namespace": "edge", "config.name": "gw" },
  "xDS and the ConfigMap": { "config.output": "configmap" },
  "gateway on the ConfigMap beside xDS": { "envoy.enabled": true, "envoy.configSource": "configmap" },
  "plaintext xDS": { "xds.tls.mode": "plaintext", "envoy.enabled": true },
  "credentials off": { "credentials.enabled": false },
};

/** Whether the operator writes its ConfigMap with these values (the chart's config.output rule). */
function writesConfigMap(values: Values): boolean {
  if (values["config.output"]) return values["config.output"] === "configmap";
  return (
    values["xds.enabled"] === false ||
    (values["envoy.enabled"] === true && values["envoy.configSource"] === "configmap")
  );
}

const rbacKinds = ["ClusterRole", "Role"];
function roles(r: Rendered): K8sObject[] {
  return r.objects.filter((o) => rbacKinds.includes(o.kind));
}
function rules(r: Rendered): Rule[] {
  return roles(r).flatMap((o) => (o.rules ?? []) as Rule[]);
}
/** "group/resource" -> sorted verbs, merged over every rule of the given roles. */
function grants(objs: K8sObject[]): Record<string, string[]> {
  const out: Record<string, Set<string>> = {};
  for (const rule of objs.flatMap((o) => (o.rules ?? []) as Rule[])) {
    for (const g of rule.apiGroups ?? []) {
      for (const res of rule.resources ?? []) {
        const key = `${g || "core"}/${res}${rule.resourceNames ? `[${rule.resourceNames.join(",")}]` : ""}`;
        out[key] ??= new Set();
        for (const v of rule.verbs) out[key].add(v);
      }
    }
  }
  return Object.fromEntries(
    Object.entries(out)
      .map(([k, v]) => [k, [...v].sort()])
      .sort(),
  );
}

const policyGrants = {
  "core/events": ["create", "patch"],
  "core/services": ["get", "list", "watch"],
  "discovery.k8s.io/endpointslices": ["get", "list", "watch"],
  "events.k8s.io/events": ["create", "patch"],
  "fallback.dev/fallbackpolicies": ["get", "list", "watch"],
  "fallback.dev/fallbackpolicies/status": ["get", "patch", "update"],
};

describe.each(Object.entries(combos))("RBAC with %s", (_name, values) => {
  const r = template(values);

  it("has no wildcard in any rule", () => {
    expect(rules(r).length).toBeGreaterThan(0);
    for (const rule of rules(r)) {
      for (const field of [rule.apiGroups, rule.resources, rule.verbs, rule.resourceNames, rule.nonResourceURLs]) {
        for (const item of field ?? []) expect(item, JSON.stringify(rule)).not.toContain("*");
      }
      expect(rule.nonResourceURLs).toBeUndefined();
    }
    for (const role of roles(r)) expect(role.aggregationRule).toBeUndefined();
  });

  it("reads Secrets (for credentials) only, never writes them, and never escalate/bind/impersonate", () => {
    for (const rule of rules(r)) {
      if ((rule.resources ?? []).includes("secrets")) expect(rule.verbs).toEqual(["get", "list", "watch"]);
      for (const v of ["escalate", "bind", "impersonate", "delete", "deletecollection"])
        expect(rule.verbs).not.toContain(v);
    }
  });

  it("binds every role it creates, and only to the chart's ServiceAccount", () => {
    const bindings = r.objects.filter((o) => o.kind === "ClusterRoleBinding" || o.kind === "RoleBinding");
    expect(bindings.length).toBe(roles(r).length);
    for (const b of bindings) {
      const role = roles(r).find(
        (o) =>
          o.kind === b.roleRef.kind &&
          o.metadata.name === b.roleRef.name &&
          o.metadata.namespace === b.metadata.namespace,
      );
      expect(role, `${b.kind} ${b.metadata.name} points at a role the chart creates`).toBeDefined();
      expect(b.subjects).toEqual([{ kind: "ServiceAccount", name: FULLNAME, namespace: NAMESPACE }]);
    }
  });

  it("grants ConfigMaps only when it writes one: in the config namespace, writes to that one only", () => {
    const configNs = String(values["config.namespace"] ?? NAMESPACE);
    const configName = String(values["config.name"] ?? "fallback-envoy");
    const cmRoles = roles(r).filter((o) =>
      ((o.rules ?? []) as Rule[]).some((x) => x.resources?.includes("configmaps")),
    );
    const args = one(r, "Deployment", FULLNAME).spec.template.spec.containers[0].args as string[];
    if (!writesConfigMap(values)) {
      expect(args).toContain("--config-output=none");
      expect(cmRoles).toHaveLength(0);
      return;
    }
    expect(args).toContain("--config-output=configmap");
    expect(cmRoles.map((o) => `${o.kind}/${o.metadata.namespace}`)).toEqual([`Role/${configNs}`]);
    expect(grants(cmRoles)).toEqual({
      "core/configmaps": ["create", "list", "watch"],
      [`core/configmaps[${configName}]`]: ["get", "patch", "update"],
    });
    // update and patch appear only together with resourceNames.
    for (const rule of rules(r).filter((x) => x.resources?.includes("configmaps"))) {
      if (rule.verbs.includes("update") || rule.verbs.includes("patch"))
        expect(rule.resourceNames).toEqual([configName]);
      // create cannot be restricted by name, so a rule mixing both would be misleading.
      if (rule.verbs.includes("create")) expect(rule.resourceNames).toBeUndefined();
    }
  });

  it("grants exactly the policy, Service, EndpointSlice and Event verbs, and reads Secrets for credentials unless credentials.enabled is off", () => {
    const policyRoles = roles(r).filter((o) =>
      ((o.rules ?? []) as Rule[]).some((x) => x.apiGroups?.includes("fallback.dev")),
    );
    expect(policyRoles).toHaveLength(1);
    const credentials = values["credentials.enabled"] !== false;
    expect(grants(policyRoles)).toEqual(
      credentials ? { ...policyGrants, "core/secrets": ["get", "list", "watch"] } : policyGrants,
    );
    const watchNs = values.watchNamespace;
    if (watchNs) {
      expect(policyRoles[0]!.kind).toBe("Role");
      expect(policyRoles[0]!.metadata.namespace).toBe(watchNs);
      expect(ofKind(r, "ClusterRole")).toHaveLength(0);
      expect(ofKind(r, "ClusterRoleBinding")).toHaveLength(0);
    } else {
      expect(policyRoles[0]!.kind).toBe("ClusterRole");
      expect(policyRoles[0]!.metadata.namespace).toBeUndefined();
    }
  });

  it("grants Leases in the config namespace (where the operator keeps its Lease) only when leader election is on", () => {
    const leaderElect = values["leaderElection.enabled"] !== false || Number(values.replicaCount ?? 1) > 1;
    const leaseRoles = roles(r).filter((o) => ((o.rules ?? []) as Rule[]).some((x) => x.resources?.includes("leases")));
    if (!leaderElect) {
      expect(leaseRoles).toHaveLength(0);
      return;
    }
    const configNs = String(values["config.namespace"] ?? NAMESPACE);
    expect(leaseRoles.map((o) => `${o.kind}/${o.metadata.namespace}`)).toEqual([`Role/${configNs}`]);
    // The operator's Lease lives in --config-namespace.
    expect(one(r, "Deployment", FULLNAME).spec.template.spec.containers[0].args).toContain(
      `--config-namespace=${configNs}`,
    );
    expect(grants(leaseRoles)).toEqual({ "coordination.k8s.io/leases": ["create", "get", "update"] });
  });
});

describe("RBAC switches", () => {
  it("rbac.create=false renders no roles or bindings", () => {
    const r = template({ "rbac.create": false });
    for (const kind of ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"])
      expect(ofKind(r, kind)).toHaveLength(0);
  });

  it("serviceAccount.create=false binds the named existing account and creates none", () => {
    const r = template({ "serviceAccount.create": false, "serviceAccount.name": "ops-bot" });
    expect(ofKind(r, "ServiceAccount")).toHaveLength(0);
    for (const b of [...ofKind(r, "ClusterRoleBinding"), ...ofKind(r, "RoleBinding")]) {
      expect(b.subjects[0].name).toBe("ops-bot");
    }
    expect(one(r, "Deployment").spec.template.spec.serviceAccountName).toBe("ops-bot");
  });
});
