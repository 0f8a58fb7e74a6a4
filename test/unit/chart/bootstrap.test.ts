// The gateway's bootstrap ConfigMap is written out in the chart's template; it must stay what
// `fallbackctl bootstrap` prints for the same settings, so the two cannot drift apart.
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { main } from "../../../operator/src/cli/main.ts";
import { NAMESPACE, one, template, type Values } from "./helm.ts";

const CERT_DIR = "/etc/fallback/xds";

/** main bootstrap's YAML, parsed. */
function fallbackctlBootstrap(args: string[]): unknown {
  let out = "";
  let err = "";
  const code = main(["bootstrap", ...args], { stdout: (s) => (out += s), stderr: (s) => (err += s) });
  if (code !== 0) throw new Error(`fallbackctl bootstrap ${args.join(" ")} failed (${code}): ${err}`);
  return parse(out);
}

interface Case {
  values: Values;
  /** The gateway's name (node id and cluster), the xDS Service and its namespace. */
  envoy: string;
  service: string;
  port: number;
  tls: "mtls" | "tls" | "none";
  serverName?: string;
  sotw?: boolean;
  allStats?: boolean;
  statsInterval?: string;
}

const cases: Record<string, Case> = {
  "the defaults (Delta, mTLS, generated certificates)": {
    values: {},
    envoy: "fo-fallback-operator-envoy",
    service: "fo-fallback-operator-xds",
    port: 18000,
    tls: "mtls",
  },
  "state-of-the-world on another port, the gateway in another namespace, every stat": {
    values: {
      "envoy.xdsProtocol": "sotw",
      "xds.port": 18443,
      "config.namespace": "edge",
      "envoy.allStats": true,
      "envoy.statsInterval": "15s",
    },
    envoy: "fo-fallback-operator-envoy",
    service: "fo-fallback-operator-xds",
    port: 18443,
    tls: "mtls",
    sotw: true,
    allStats: true,
    statsInterval: "15s",
  },
  "TLS without client certificates": {
    values: { "xds.tls.mtls": false },
    envoy: "fo-fallback-operator-envoy",
    service: "fo-fallback-operator-xds",
    port: 18000,
    tls: "tls",
  },
  plaintext: {
    values: { "xds.tls.mode": "plaintext" },
    envoy: "fo-fallback-operator-envoy",
    service: "fo-fallback-operator-xds",
    port: 18000,
    tls: "none",
  },
  "Secrets of one's own and a server name": {
    values: {
      "xds.tls.mode": "secret",
      "xds.tls.serverSecret": "srv",
      "xds.tls.clientSecret": "cli",
      "xds.tls.serverName": "xds.fallback.example",
      fullnameOverride: "edge",
    },
    envoy: "edge-envoy",
    service: "edge-xds",
    port: 18000,
    tls: "mtls",
    serverName: "xds.fallback.example",
  },
};

describe("the gateway's bootstrap ConfigMap", () => {
  for (const [name, c] of Object.entries(cases)) {
    it(`is main bootstrap's output with ${name}`, () => {
      const rendered = template({ "envoy.enabled": true, ...c.values });
      const cm = one(rendered, "ConfigMap", `${c.envoy}-bootstrap`);
      const chart = parse(cm.data["bootstrap.yaml"]);

      const host = `${c.service}.${NAMESPACE}.svc`;
      const args = ["--xds-server", `${host}:${c.port}`, "--node-id", c.envoy, "--node-cluster", c.envoy];
      if (c.sotw) args.push("--sotw");
      if (c.allStats) args.push("--all-stats");
      if (c.statsInterval) args.push("--stats-interval", c.statsInterval);
      if (c.tls !== "none") {
        args.push("--xds-ca", `${CERT_DIR}/ca.crt`);
        if (c.tls === "mtls") args.push("--xds-cert", `${CERT_DIR}/tls.crt`, "--xds-key", `${CERT_DIR}/tls.key`);
        args.push("--xds-server-name", c.serverName ?? host);
      }
      expect(chart).toEqual(fallbackctlBootstrap(args));
    });
  }
});
