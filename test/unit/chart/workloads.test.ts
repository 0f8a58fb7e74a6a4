// The rendered Deployments, Services, PDBs and ServiceMonitor: security settings, probes,
// arguments, and which parts exist for which values.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { chartDir } from "../../support/helm.ts";
import { NAMESPACE, notes, ofKind, one, template, type K8sObject, type Rendered, type Values } from "./helm.ts";

const FULLNAME = "fo-fallback-operator";
const ENVOY = `${FULLNAME}-envoy`;
const appVersion = String(
  (parse(readFileSync(join(chartDir, "Chart.yaml"), "utf8")) as { appVersion: string }).appVersion,
);

function operator(r: Rendered): K8sObject {
  return one(r, "Deployment", FULLNAME);
}
function container(d: K8sObject, name: string) {
  const c = d.spec.template.spec.containers.find((x: { name: string }) => x.name === name);
  if (!c) throw new Error(`no container ${name} in ${d.metadata.name}`);
  return c;
}
function portNumber(c: { ports: Array<{ name: string; containerPort: number }> }, name: string): number {
  const p = c.ports.find((x) => x.name === name);
  if (!p) throw new Error(`no port ${name}`);
  return p.containerPort;
}
function expectHardened(d: K8sObject, c: { securityContext: Record<string, unknown> }) {
  const pod = d.spec.template.spec.securityContext;
  expect(pod.runAsNonRoot).toBe(true);
  expect(pod.runAsUser).toBeGreaterThan(0);
  expect(pod.seccompProfile).toEqual({ type: "RuntimeDefault" });
  expect(c.securityContext).toMatchObject({
    runAsNonRoot: true,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ["ALL"] },
    seccompProfile: { type: "RuntimeDefault" },
  });
  expect((c.securityContext as { privileged?: boolean }).privileged).not.toBe(true);
  expect(d.spec.template.spec.hostNetwork).toBeUndefined();
  expect(d.spec.template.spec.hostPID).toBeUndefined();
}

describe("every rendered object", () => {
  const all = template({
    "envoy.enabled": true,
    replicaCount: 2,
    "envoy.replicaCount": 2,
    "metrics.serviceMonitor.enabled": true,
  });
  it("carries the app.kubernetes.io labels", () => {
    for (const o of all.objects.filter((x) => x.kind !== "CustomResourceDefinition")) {
      expect(o.metadata.labels, `${o.kind}/${o.metadata.name}`).toMatchObject({
        "app.kubernetes.io/name": "fallback-operator",
        "app.kubernetes.io/instance": "fo",
        "app.kubernetes.io/managed-by": "Helm",
        "app.kubernetes.io/version": appVersion,
      });
      expect(o.metadata.labels["app.kubernetes.io/component"]).toMatch(/^(operator|envoy)$/);
    }
  });
  it("names its namespace explicitly when namespaced", () => {
    const clusterScoped = ["ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"];
    for (const o of all.objects) {
      if (clusterScoped.includes(o.kind)) expect(o.metadata.namespace).toBeUndefined();
      else expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBeTruthy();
    }
  });
  it("has Services and PDBs whose selectors match their pods, and Service ports that exist", () => {
    const deployments = ofKind(all, "Deployment");
    const matches = (sel: Record<string, string>) =>
      deployments.filter((d) => Object.entries(sel).every(([k, v]) => d.spec.template.metadata.labels[k] === v));
    for (const s of ofKind(all, "Service")) {
      const [d, ...more] = matches(s.spec.selector);
      expect(d, `Service ${s.metadata.name} selects a Deployment`).toBeDefined();
      expect(more).toHaveLength(0);
      expect(d!.metadata.namespace).toBe(s.metadata.namespace);
      const names = d!.spec.template.spec.containers.flatMap((c: { ports: Array<{ name: string }> }) =>
        c.ports.map((p) => p.name),
      );
      for (const p of s.spec.ports) expect(names).toContain(p.targetPort);
    }
    for (const pdb of ofKind(all, "PodDisruptionBudget"))
      expect(matches(pdb.spec.selector.matchLabels)).toHaveLength(1);
    for (const d of deployments) {
      expect(
        Object.entries(d.spec.selector.matchLabels).every(([k, v]) => d.spec.template.metadata.labels[k] === v),
      ).toBe(true);
    }
  });
});

describe("operator Deployment", () => {
  const r = template();
  const d = operator(r);
  const c = container(d, "operator");

  it("is hardened: non-root, read-only root, no privilege escalation, no capabilities, RuntimeDefault seccomp", () => {
    expectHardened(d, c);
    expect(d.spec.template.spec.automountServiceAccountToken).toBe(true);
    expect(d.spec.template.spec.serviceAccountName).toBe(FULLNAME);
  });

  it("probes /healthz (liveness) and /readyz (readiness) on the port --health-addr binds", () => {
    const health = portNumber(c, "health");
    expect(c.args).toContain(`--health-addr=0.0.0.0:${health}`);
    expect(c.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "health" });
    expect(c.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "health" });
    expect(c.args).toContain(`--metrics-addr=0.0.0.0:${portNumber(c, "metrics")}`);
  });

  it("sets resource requests", () => {
    expect(c.resources.requests.cpu).toBeTruthy();
    expect(c.resources.requests.memory).toBeTruthy();
  });

  it("defaults the image tag to the chart's appVersion", () => {
    expect(c.image).toBe(`ghcr.io/fallback-dev/fallback-operator:${appVersion}`);
    expect(c.imagePullPolicy).toBe("IfNotPresent");
    const pinned = container(operator(template({ "image.digest": `sha256:${"a".repeat(64)}` })), "operator");
    expect(pinned.image).toBe(`ghcr.io/fallback-dev/fallback-operator@sha256:${"a".repeat(64)}`);
    expect(container(operator(template({ "image.tag": "v9" })), "operator").image).toMatch(/:v9$/);
  });

  it("serves xDS over mTLS by default, writes no ConfigMap, and passes log level and leader election as flags", () => {
    expect(c.args).toEqual([
      `--config-namespace=${NAMESPACE}`,
      "--config-name=fallback-envoy",
      "--config-output=none",
      "--metrics-addr=0.0.0.0:8080",
      "--health-addr=0.0.0.0:8081",
      "--log-level=info",
      "--cluster-domain=cluster.local",
      "--xds-addr=0.0.0.0:18000",
      "--xds-tls-cert=/etc/fallback/xds/tls.crt",
      "--xds-tls-key=/etc/fallback/xds/tls.key",
      "--xds-client-ca=/etc/fallback/xds/ca.crt",
      "--leader-elect",
    ]);
  });

  it("passes the config ConfigMap, its mount path and the other flags in the ConfigMap-only mode", () => {
    const custom = container(
      operator(
        template({
          "xds.enabled": false,
          "config.namespace": "edge",
          "config.name": "gw",
          logLevel: "debug",
          watchNamespace: "apps",
          "leaderElection.enabled": false,
          "metrics.port": 9090,
          "health.port": 9091,
          "envoy.configMountPath": "/config",
          clusterDomain: "corp.example",
        }),
      ),
      "operator",
    );
    expect(custom.args).toEqual([
      "--config-namespace=edge",
      "--config-name=gw",
      "--config-output=configmap",
      "--metrics-addr=0.0.0.0:9090",
      "--health-addr=0.0.0.0:9091",
      "--log-level=debug",
      "--cluster-domain=corp.example",
      "--envoy-config-dir=/config",
      "--watch-namespace=apps",
    ]);
    expect(custom.ports.map((p: { name: string }) => p.name)).toEqual(["metrics", "health"]);
  });

  it("gives the operator its pod name and namespace", () => {
    const env = Object.fromEntries(
      c.env.map((e: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }) => [
        e.name,
        e.valueFrom?.fieldRef?.fieldPath,
      ]),
    );
    expect(env.POD_NAME).toBe("metadata.name");
    expect(env.POD_NAMESPACE).toBe("metadata.namespace");
  });

  it("applies scheduling values and pod annotations", () => {
    const s = operator(
      template({
        "nodeSelector.pool": "ops",
        "tolerations[0].key": "ops",
        "tolerations[0].operator": "Exists",
        "podAnnotations.team": "edge",
        priorityClassName: "system-cluster-critical",
        "imagePullSecrets[0].name": "regcred",
      }),
    ).spec.template;
    expect(s.spec.nodeSelector).toEqual({ pool: "ops" });
    expect(s.spec.tolerations).toEqual([{ key: "ops", operator: "Exists" }]);
    expect(s.metadata.annotations).toMatchObject({ team: "edge" });
    expect(s.spec.priorityClassName).toBe("system-cluster-critical");
    expect(s.spec.imagePullSecrets).toEqual([{ name: "regcred" }]);
  });
});

describe("replicas, leader election and the PodDisruptionBudget", () => {
  it("one replica: no PDB", () => {
    expect(ofKind(template(), "PodDisruptionBudget")).toHaveLength(0);
  });
  it("three replicas: a PDB, and --leader-elect even when leaderElection.enabled is false", () => {
    const r = template({ replicaCount: 3, "leaderElection.enabled": false });
    const pdb = one(r, "PodDisruptionBudget");
    expect(pdb.spec.minAvailable).toBe(1);
    expect(pdb.spec.selector.matchLabels["app.kubernetes.io/component"]).toBe("operator");
    expect(operator(r).spec.replicas).toBe(3);
    expect(container(operator(r), "operator").args).toContain("--leader-elect");
  });
  it("one replica with leader election off: no --leader-elect, and Recreate so two never overlap", () => {
    const d = operator(template({ "leaderElection.enabled": false }));
    expect(container(d, "operator").args).not.toContain("--leader-elect");
    expect(d.spec.strategy.type).toBe("Recreate");
  });
});

describe("Envoy gateway", () => {
  it("is absent by default", () => {
    const r = template();
    const gateway = r.objects.filter(
      (o) => o.metadata.labels?.["app.kubernetes.io/component"] === "envoy" && o.kind !== "Secret",
    );
    expect(gateway).toHaveLength(0);
    expect(ofKind(r, "Deployment")).toHaveLength(1);
  });

  const r = template({ "envoy.enabled": true });
  const d = one(r, "Deployment", ENVOY);
  const c = container(d, "envoy");

  it("starts envoy with the bootstrap.yaml from configMountPath", () => {
    expect(c.command).toEqual(["envoy"]);
    expect(c.args.slice(0, 2)).toEqual(["-c", "/etc/envoy/fallback/bootstrap.yaml"]);
  });

  it("mounts nothing with subPath", () => {
    for (const m of c.volumeMounts) {
      expect(m.subPath).toBeUndefined();
      expect(m.subPathExpr).toBeUndefined();
    }
  });

  it("is hardened, has no API token, sets requests", () => {
    expectHardened(d, c);
    expect(d.spec.template.spec.automountServiceAccountToken).toBe(false);
    expect(c.resources.requests.cpu).toBeTruthy();
  });

  it("probes the HTTP listener the operator opens on 10000 (admin is bound to 127.0.0.1)", () => {
    expect(portNumber(c, "http")).toBe(10000);
    expect(c.readinessProbe.tcpSocket).toEqual({ port: "http" });
    expect(c.livenessProbe.tcpSocket).toEqual({ port: "http" });
    expect(c.ports.map((p: { name: string }) => p.name)).not.toContain("admin");
  });

  it("has a Service, in config.namespace", () => {
    const s = one(r, "Service", ENVOY);
    expect(s.metadata.namespace).toBe(NAMESPACE);
    expect(s.spec.ports).toEqual([{ name: "http", port: 80, targetPort: "http", protocol: "TCP" }]);
  });

  it("runs in config.namespace when that differs, with its bootstrap and client certificate there", () => {
    const elsewhere = template({ "envoy.enabled": true, "config.namespace": "edge", "config.name": "gw" });
    const ed = one(elsewhere, "Deployment", ENVOY);
    expect(ed.metadata.namespace).toBe("edge");
    expect(one(elsewhere, "Service", ENVOY).metadata.namespace).toBe("edge");
    expect(one(elsewhere, "ConfigMap", `${ENVOY}-bootstrap`).metadata.namespace).toBe("edge");
    expect(one(elsewhere, "Secret", `${FULLNAME}-xds-client`).metadata.namespace).toBe("edge");
    expect(one(elsewhere, "Secret", `${FULLNAME}-xds-server`).metadata.namespace).toBe(NAMESPACE);
  });

  it("gets a PDB only with more than one replica, and drops probes set to null", () => {
    expect(ofKind(r, "PodDisruptionBudget")).toHaveLength(0);
    const many = template({
      "envoy.enabled": true,
      "envoy.replicaCount": 2,
      "envoy.readinessProbe": null,
      "envoy.livenessProbe": null,
    });
    expect(one(many, "PodDisruptionBudget", ENVOY).spec.selector.matchLabels["app.kubernetes.io/component"]).toBe(
      "envoy",
    );
    const mc = container(one(many, "Deployment", ENVOY), "envoy");
    expect(mc.readinessProbe).toBeUndefined();
    expect(mc.livenessProbe).toBeUndefined();
  });
});

describe("Envoy gateway on the operator's ConfigMap (envoy.configSource=configmap)", () => {
  for (const [name, values] of Object.entries<Values>({
    "beside xDS": { "envoy.enabled": true, "envoy.configSource": "configmap" },
    "in the ConfigMap-only mode": { "envoy.enabled": true, "envoy.configSource": "configmap", "xds.enabled": false },
  })) {
    describe(name, () => {
      const r = template(values);
      const d = one(r, "Deployment", ENVOY);
      const c = container(d, "envoy");

      it("mounts the operator's ConfigMap as a whole directory, never with subPath", () => {
        const volume = d.spec.template.spec.volumes.find((v: { configMap?: { name: string } }) => v.configMap);
        expect(volume.configMap.name).toBe("fallback-envoy");
        expect(volume.configMap.items).toBeUndefined();
        const mount = c.volumeMounts.find((m: { name: string }) => m.name === volume.name);
        expect(mount).toEqual({ name: "config", mountPath: "/etc/envoy/fallback", readOnly: true });
        for (const m of c.volumeMounts) {
          expect(m.subPath).toBeUndefined();
          expect(m.subPathExpr).toBeUndefined();
        }
      });

      it("runs envoy -c <dir>/bootstrap.yaml as before: no bootstrap ConfigMap, no certificate, no node override", () => {
        expect(c.args).toEqual(["-c", "/etc/envoy/fallback/bootstrap.yaml", "--log-level", "info"]);
        expect(c.env).toBeUndefined();
        expect(c.volumeMounts.map((m: { name: string }) => m.name)).toEqual(["config", "tmp"]);
        expect(ofKind(r, "ConfigMap")).toHaveLength(0);
        expect(d.spec.template.metadata.annotations).toBeUndefined();
      });

      it("has the operator write the ConfigMap and tell it the mount path", () => {
        const args = container(operator(r), "operator").args as string[];
        expect(args).toContain("--config-output=configmap");
        expect(args).toContain("--envoy-config-dir=/etc/envoy/fallback");
      });
    });
  }

  it("follows config.namespace and config.name", () => {
    const elsewhere = template({
      "envoy.enabled": true,
      "envoy.configSource": "configmap",
      "config.namespace": "edge",
      "config.name": "gw",
    });
    const ed = one(elsewhere, "Deployment", ENVOY);
    expect(ed.metadata.namespace).toBe("edge");
    expect(ed.spec.template.spec.volumes.find((v: { configMap?: unknown }) => v.configMap).configMap.name).toBe("gw");
  });
});

describe("metrics Service and ServiceMonitor", () => {
  it("has a metrics Service and no ServiceMonitor by default", () => {
    const r = template();
    const s = one(r, "Service", `${FULLNAME}-metrics`);
    expect(s.spec.ports).toEqual([{ name: "metrics", port: 8080, targetPort: "metrics", protocol: "TCP" }]);
    expect(ofKind(r, "ServiceMonitor")).toHaveLength(0);
  });
  it("renders a ServiceMonitor when enabled, scraping the metrics port", () => {
    const r = template({ "metrics.serviceMonitor.enabled": true, "metrics.serviceMonitor.labels.release": "prom" });
    const sm = one(r, "ServiceMonitor");
    expect(sm.apiVersion).toBe("monitoring.coreos.com/v1");
    expect(sm.metadata.labels.release).toBe("prom");
    expect(sm.spec.endpoints).toEqual([{ port: "metrics", path: "/metrics", honorLabels: true, interval: "30s" }]);
    expect(sm.spec.namespaceSelector.matchNames).toEqual([NAMESPACE]);
    const svc = one(r, "Service", `${FULLNAME}-metrics`);
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) expect(svc.metadata.labels[k]).toBe(v);
  });
  it("can drop the metrics Service", () => {
    expect(ofKind(template({ "metrics.service.enabled": false }), "Service").map((s) => s.metadata.name)).toEqual([
      `${FULLNAME}-xds`,
    ]);
    expect(ofKind(template({ "metrics.service.enabled": false, "xds.enabled": false }), "Service")).toHaveLength(0);
  });
});

describe("NOTES.txt", () => {
  it("names the xDS Service and its TLS, and with the gateway the Envoy Deployment", () => {
    const text = notes();
    expect(text).toContain(`${FULLNAME}-xds.${NAMESPACE}.svc:18000`);
    expect(text).toContain("mTLS");
    expect(text).toContain("CLOSED to every pod");
    expect(text).not.toContain("ConfigMap fallback-system/fallback-envoy");
    const gateway = notes({ "envoy.enabled": true });
    expect(gateway).toContain(`deployment/${ENVOY}`);
    expect(gateway).toContain("open only to the chart's Envoy gateway");
    expect(notes({ "xds.tls.mode": "plaintext" })).toContain("PLAINTEXT");
  });
  it("names the ConfigMap in the ConfigMap-only mode", () => {
    expect(notes({ "xds.enabled": false })).toContain(`ConfigMap ${NAMESPACE}/fallback-envoy`);
    expect(notes({ "xds.enabled": false, "envoy.enabled": true, "envoy.configSource": "configmap" })).toContain(
      `deployment/${ENVOY}`,
    );
  });
});
