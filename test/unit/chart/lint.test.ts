// helm lint stays clean for the main value combinations, and the values schema rejects values
// of the wrong type (so a typo fails at lint/install time, not in a running pod).
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { chartDir } from "../../support/helm.ts";
import { helm, NAMESPACE, RELEASE, setFlags, type Values } from "./helm.ts";

function lint(args: string[]) {
  return helm(["lint", "--strict", chartDir, "--namespace", NAMESPACE, ...args]);
}

function valuesFile(yamlText: string): string {
  const dir = mkdtempSync(join(tmpdir(), "chart-values-"));
  const file = join(dir, "values.yaml");
  writeFileSync(file, yamlText);
  return file;
}

describe("helm lint --strict", () => {
  const combos: Record<string, Values> = {
    "default values": {},
    "envoy gateway and three replicas": { "envoy.enabled": true, replicaCount: 3 },
    "one watched namespace, config elsewhere": { watchNamespace: "apps", "config.namespace": "edge" },
    "ServiceMonitor, no leader election": { "metrics.serviceMonitor.enabled": true, "leaderElection.enabled": false },
    "existing ServiceAccount, no RBAC": {
      "serviceAccount.create": false,
      "serviceAccount.name": "ops",
      "rbac.create": false,
    },
    "envoy with three replicas, no probes": {
      "envoy.enabled": true,
      "envoy.replicaCount": 3,
      "envoy.readinessProbe": null,
      "envoy.livenessProbe": null,
    },
    "the ConfigMap-only mode with its gateway": {
      "xds.enabled": false,
      "envoy.enabled": true,
      "envoy.configSource": "configmap",
    },
    "plaintext xDS, state-of-the-world gateway": {
      "xds.tls.mode": "plaintext",
      "envoy.enabled": true,
      "envoy.xdsProtocol": "sotw",
    },
    "Secrets of one's own, no NetworkPolicy": {
      "xds.tls.mode": "secret",
      "xds.tls.serverSecret": "srv",
      "xds.tls.clientSecret": "cli",
      "envoy.enabled": true,
      "xds.networkPolicy.enabled": false,
    },
    "TLS without mTLS, xDS and the ConfigMap": {
      "xds.tls.mtls": false,
      "config.output": "configmap",
      "envoy.enabled": true,
    },
  };
  for (const [name, values] of Object.entries(combos)) {
    it(`is clean with ${name}`, () => {
      const run = lint(setFlags(values));
      expect(run.stderr + run.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
      expect(run.status, run.stdout + run.stderr).toBe(0);
      expect(run.stdout).toContain("0 chart(s) failed");
    });
  }
});

describe("values schema", () => {
  const wrong: Array<[string, string, RegExp]> = [
    ["replicaCount: three", "replicaCount: three\n", /replicaCount.*want integer/],
    ["replicaCount as a quoted number", 'replicaCount: "3"\n', /replicaCount.*want integer/],
    ["negative replicaCount", "replicaCount: -1\n", /replicaCount/],
    ["envoy.enabled: yes-please", "envoy:\n  enabled: yes-please\n", /envoy\/enabled.*want boolean/],
    ["metrics.port as text", "metrics:\n  port: eighty\n", /metrics\/port/],
    ["health.port out of range", "health:\n  port: 70000\n", /health\/port/],
    ["unknown image.pullPolicy", "image:\n  pullPolicy: Sometimes\n", /image\/pullPolicy/],
    ["unknown logLevel", "logLevel: loud\n", /logLevel/],
    ["a misspelt top-level key", "replicas: 2\n", /additional properties 'replicas' not allowed/],
    ["a misspelt nested key", "leaderElection:\n  enable: true\n", /additional properties 'enable' not allowed/],
    ["resources without requests", "resources:\n  requests: null\n", /requests/],
    ["watchNamespace that is not a DNS label", "watchNamespace: Apps_1\n", /watchNamespace/],
    ["tolerations as a map", "tolerations:\n  key: a\n", /tolerations.*want array/],
    ["envoy.service without ports", "envoy:\n  service:\n    ports: []\n", /envoy\/service\/ports/],
    ["unknown xds.tls.mode", "xds:\n  tls:\n    mode: self-signed\n", /xds\/tls\/mode/],
    ["xds.port as text", "xds:\n  port: grpc\n", /xds\/port/],
    ["xds.enabled as text", 'xds:\n  enabled: "no"\n', /xds\/enabled.*want boolean/],
    ["unknown envoy.configSource", "envoy:\n  configSource: files\n", /envoy\/configSource/],
    ["unknown envoy.xdsProtocol", "envoy:\n  xdsProtocol: rest\n", /envoy\/xdsProtocol/],
    ["unknown config.output", "config:\n  output: file\n", /config\/output/],
    [
      "networkPolicy.from as a map",
      "xds:\n  networkPolicy:\n    from:\n      podSelector: {}\n",
      /xds\/networkPolicy\/from.*want array/,
    ],
    [
      "a misspelt NetworkPolicy peer",
      "xds:\n  networkPolicy:\n    from:\n      - podSelecter: {}\n",
      /additional properties 'podSelecter' not allowed/,
    ],
    ["validityDays of 0", "xds:\n  tls:\n    generated:\n      validityDays: 0\n", /validityDays/],
  ];
  for (const [name, yamlText, message] of wrong) {
    it(`rejects ${name} in helm lint and helm template`, () => {
      const file = valuesFile(yamlText);
      const linted = lint(["-f", file]);
      expect(linted.status).not.toBe(0);
      expect(linted.stdout + linted.stderr).toMatch(message);
      const rendered = helm(["template", RELEASE, chartDir, "-f", file]);
      expect(rendered.status).not.toBe(0);
      expect(rendered.stderr).toMatch(/values don't meet the specifications of the schema/);
    });
  }

  it("rejects a wrong type given with --set-string", () => {
    const run = helm(["template", RELEASE, chartDir, "--set-string", "replicaCount=3"]);
    expect(run.status).not.toBe(0);
    expect(run.stderr).toMatch(/replicaCount.*want integer/);
  });

  it("refuses clusters older than kubeVersion >=1.29", () => {
    const old = helm(["template", RELEASE, chartDir, "--kube-version", "1.28.0"]);
    expect(old.status).not.toBe(0);
    expect(old.stderr).toMatch(/kubeVersion|incompatible/i);
    expect(helm(["template", RELEASE, chartDir, "--kube-version", "1.29.0"]).status).toBe(0);
  });
});
