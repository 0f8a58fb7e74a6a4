// The chart's xDS mode (the default): the operator's xDS flags, port, Service and TLS files;
// the three TLS modes; the generated certificates; the NetworkPolicy; the gateway on the
// bootstrap ConfigMap; and the value combinations the chart refuses.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { once } from "node:events";
import { connect, createServer, type TLSSocket } from "node:tls";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { chartDir } from "../../support/helm.ts";
import {
  helm,
  NAMESPACE,
  ofKind,
  one,
  RELEASE,
  setFlags,
  template,
  type K8sObject,
  type Rendered,
  type Values,
} from "./helm.ts";

const FULLNAME = "fo-fallback-operator";
const ENVOY = `${FULLNAME}-envoy`;
const XDS_SERVICE = `${FULLNAME}-xds`;
const XDS_HOST = `${XDS_SERVICE}.${NAMESPACE}.svc`;
const CERT_DIR = "/etc/fallback/xds";
const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

type Container = {
  name: string;
  args: string[];
  ports: Array<{ name: string; containerPort: number }>;
  volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
  env?: Array<{ name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>;
};
type Volume = {
  name: string;
  secret?: { secretName: string; items?: Array<{ key: string; path: string }> };
  configMap?: { name: string };
};

function operator(r: Rendered): K8sObject {
  return one(r, "Deployment", FULLNAME);
}
function envoy(r: Rendered): K8sObject {
  return one(r, "Deployment", ENVOY);
}
function containerOf(d: K8sObject): Container {
  return d.spec.template.spec.containers[0] as Container;
}
function volume(d: K8sObject, name: string): Volume | undefined {
  return (d.spec.template.spec.volumes as Volume[]).find((v) => v.name === name);
}
function mount(d: K8sObject, name: string) {
  return containerOf(d).volumeMounts.find((m) => m.name === name);
}
function xdsArgs(d: K8sObject): string[] {
  return containerOf(d).args.filter((a) => a.startsWith("--xds-"));
}
function secretData(s: K8sObject): Record<string, string> {
  return Object.fromEntries(
    Object.entries(s.data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]),
  );
}
function bootstrapOf(r: Rendered): Record<string, any> {
  return parse(one(r, "ConfigMap", `${ENVOY}-bootstrap`).data["bootstrap.yaml"]) as Record<string, any>;
}
function xdsCluster(bootstrap: Record<string, any>): Record<string, any> {
  return bootstrap.static_resources.clusters[0];
}
/** helm template that must fail; returns its stderr. */
function refused(values: Values): string {
  const run = helm(["template", RELEASE, chartDir, "--namespace", NAMESPACE, ...setFlags(values)]);
  expect(run.status, "helm template should fail").not.toBe(0);
  return run.stderr;
}

describe("default render: xDS over mTLS with generated certificates", () => {
  const r = template({ "envoy.enabled": true });
  const d = operator(r);
  const c = containerOf(d);

  it("runs the xDS server with TLS and client verification, and writes no ConfigMap", () => {
    expect(xdsArgs(d)).toEqual([
      "--xds-addr=0.0.0.0:18000",
      `--xds-tls-cert=${CERT_DIR}/tls.crt`,
      `--xds-tls-key=${CERT_DIR}/tls.key`,
      `--xds-client-ca=${CERT_DIR}/ca.crt`,
    ]);
    expect(c.args).toContain("--config-output=none");
    expect(c.args.some((a) => a.startsWith("--envoy-config-dir"))).toBe(false);
    expect(c.ports).toContainEqual({ name: "xds", containerPort: 18000, protocol: "TCP" });
  });

  it("mounts the server Secret read-only where the flags point", () => {
    expect(mount(d, "xds-tls")).toEqual({ name: "xds-tls", mountPath: CERT_DIR, readOnly: true });
    expect(volume(d, "xds-tls")!.secret).toEqual({
      secretName: `${FULLNAME}-xds-server`,
      items: [
        { key: "tls.crt", path: "tls.crt" },
        { key: "tls.key", path: "tls.key" },
        { key: "ca.crt", path: "ca.crt" },
      ],
    });
  });

  it("has a ClusterIP Service on the xDS port that selects every operator pod", () => {
    const s = one(r, "Service", XDS_SERVICE);
    expect(s.metadata.namespace).toBe(NAMESPACE);
    expect(s.spec.type).toBe("ClusterIP");
    expect(s.spec.ports).toEqual([{ name: "xds", port: 18000, targetPort: "xds", protocol: "TCP" }]);
    expect(s.spec.selector).toEqual(d.spec.selector.matchLabels);
    // No leader-only label: followers serve xDS too.
    expect(Object.keys(s.spec.selector).sort()).toEqual([
      "app.kubernetes.io/component",
      "app.kubernetes.io/instance",
      "app.kubernetes.io/name",
    ]);
  });

  it("runs the gateway on a bootstrap ConfigMap that dials the xDS Service over mTLS", () => {
    const e = envoy(r);
    const ec = containerOf(e);
    expect(volume(e, "config")!.configMap).toEqual({ name: `${ENVOY}-bootstrap` });
    expect(mount(e, "config")).toEqual({ name: "config", mountPath: "/etc/envoy/fallback", readOnly: true });
    expect(mount(e, "xds-tls")).toEqual({ name: "xds-tls", mountPath: CERT_DIR, readOnly: true });
    expect(volume(e, "xds-tls")!.secret).toEqual({
      secretName: `${FULLNAME}-xds-client`,
      items: [
        { key: "ca.crt", path: "ca.crt" },
        { key: "tls.crt", path: "tls.crt" },
        { key: "tls.key", path: "tls.key" },
      ],
    });
    expect(ec.args).toEqual([
      "-c",
      "/etc/envoy/fallback/bootstrap.yaml",
      "--service-node",
      "$(POD_NAME)",
      "--log-level",
      "info",
    ]);
    expect(ec.env).toEqual([{ name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } }]);

    const cm = one(r, "ConfigMap", `${ENVOY}-bootstrap`);
    expect(cm.metadata.namespace).toBe(NAMESPACE);
    const b = bootstrapOf(r);
    expect(b.dynamic_resources.ads_config.api_type).toBe("DELTA_GRPC");
    const cluster = xdsCluster(b);
    expect(cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address).toEqual({
      address: XDS_HOST,
      port_value: 18000,
    });
    const tls = cluster.transport_socket.typed_config;
    expect(tls.sni).toBe(XDS_HOST);
    expect(tls.common_tls_context.validation_context.trusted_ca.filename).toBe(`${CERT_DIR}/ca.crt`);
    expect(tls.common_tls_context.validation_context.match_typed_subject_alt_names).toEqual([
      { san_type: "DNS", matcher: { exact: XDS_HOST } },
    ]);
    expect(tls.common_tls_context.tls_certificates).toEqual([
      { certificate_chain: { filename: `${CERT_DIR}/tls.crt` }, private_key: { filename: `${CERT_DIR}/tls.key` } },
    ]);
  });

  it("rolls both Deployments when the certificates change, and Envoy when its bootstrap does", () => {
    const opSum = d.spec.template.metadata.annotations["checksum/xds-tls"];
    expect(opSum).toMatch(/^[0-9a-f]{64}$/);
    const ea = envoy(r).spec.template.metadata.annotations;
    expect(ea["checksum/xds-tls"]).toBe(opSum);
    expect(ea["checksum/bootstrap"]).toMatch(/^[0-9a-f]{64}$/);
    const sotw = envoy(template({ "envoy.enabled": true, "envoy.xdsProtocol": "sotw" })).spec.template.metadata
      .annotations;
    expect(sotw["checksum/bootstrap"]).not.toBe(ea["checksum/bootstrap"]);
    // Pod annotations of one's own stay beside them.
    const own = envoy(template({ "envoy.enabled": true, "envoy.podAnnotations.team": "edge" })).spec.template.metadata
      .annotations;
    expect(own.team).toBe("edge");
    expect(own["checksum/bootstrap"]).toBeDefined();
  });

  it("grants no ConfigMap permission (nothing is written), and none for xDS", () => {
    const roles = [...ofKind(r, "Role"), ...ofKind(r, "ClusterRole")];
    for (const role of roles) {
      for (const rule of role.rules as Array<{ resources: string[] }>)
        expect(rule.resources).not.toContain("configmaps");
    }
    expect(roles.map((x) => x.metadata.name).sort()).toEqual([FULLNAME, `${FULLNAME}-leader-election`]);
  });
});

describe("generated certificates", () => {
  const r = template({ "envoy.enabled": true });
  const server = one(r, "Secret", `${FULLNAME}-xds-server`);
  const client = one(r, "Secret", `${FULLNAME}-xds-client`);
  const s = secretData(server);
  const cl = secretData(client);
  const ca = new X509Certificate(s["ca.crt"]!);
  const serverCert = new X509Certificate(s["tls.crt"]!);
  const clientCert = new X509Certificate(cl["tls.crt"]!);
  const dnsNames = [XDS_SERVICE, `${XDS_SERVICE}.${NAMESPACE}`, XDS_HOST, `${XDS_HOST}.cluster.local`];

  it("are kubernetes.io/tls Secrets: the server's in the release namespace, Envoy's where Envoy runs", () => {
    for (const secret of [server, client]) {
      expect(secret.type).toBe("kubernetes.io/tls");
      expect(Object.keys(secret.data).sort()).toEqual(["ca.crt", "tls.crt", "tls.key"]);
      expect(secret.metadata.namespace).toBe(NAMESPACE);
    }
    expect(server.metadata.annotations["fallback.dev/xds-dns-names"]).toBe(dnsNames.join(","));
    expect(cl["ca.crt"]).toBe(s["ca.crt"]);
  });

  it("are valid PEM: a CA, and server and client certificates it signed, each with its key", () => {
    expect(ca.ca).toBe(true);
    expect(ca.verify(ca.publicKey)).toBe(true);
    for (const [cert, key] of [
      [serverCert, s["tls.key"]!],
      [clientCert, cl["tls.key"]!],
    ] as const) {
      expect(cert.ca).toBe(false);
      expect(cert.checkIssued(ca)).toBe(true);
      expect(cert.verify(ca.publicKey)).toBe(true);
      expect(cert.checkPrivateKey(createPrivateKey(key))).toBe(true);
      // Ten years by default.
      const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000;
      expect(days).toBeGreaterThan(3640);
      expect(days).toBeLessThan(3660);
    }
    expect(serverCert.keyUsage).toContain(SERVER_AUTH);
    expect(clientCert.keyUsage).toContain(CLIENT_AUTH);
  });

  it("name the xDS Service's DNS names in the server certificate", () => {
    expect(serverCert.subjectAltName!.split(", ").sort()).toEqual(dnsNames.map((n) => `DNS:${n}`).sort());
    expect(serverCert.checkHost(XDS_HOST)).toBe(XDS_HOST);
    expect(serverCert.checkHost("elsewhere.example")).toBeUndefined();
  });

  it("make an mTLS handshake: the server certificate for the Service name, the client one accepted, none refused", async () => {
    const tlsServer = createServer(
      {
        cert: s["tls.crt"],
        key: s["tls.key"],
        ca: s["ca.crt"],
        requestCert: true,
        rejectUnauthorized: true,
        ALPNProtocols: ["h2"],
      },
      (socket) => socket.end("ok"),
    );
    tlsServer.on("tlsClientError", () => {});
    tlsServer.listen(0, "127.0.0.1");
    await once(tlsServer, "listening");
    const port = (tlsServer.address() as { port: number }).port;
    const dial = (withClientCert: boolean) =>
      new Promise<string>((done, fail) => {
        const socket: TLSSocket = connect({
          host: "127.0.0.1",
          port,
          servername: XDS_HOST,
          ca: cl["ca.crt"],
          ALPNProtocols: ["h2"],
          ...(withClientCert ? { cert: cl["tls.crt"], key: cl["tls.key"] } : {}),
        });
        let data = "";
        socket.setEncoding("utf8").on("data", (chunk: string) => (data += chunk));
        socket.on("end", () => done(data));
        socket.on("error", fail);
      });
    try {
      expect(await dial(true)).toBe("ok");
      await expect(dial(false)).rejects.toThrow();
    } finally {
      tlsServer.close();
    }
  });

  it("add serverName to the names, follow clusterDomain and validityDays", () => {
    const custom = template({
      "xds.tls.serverName": "xds.example.com",
      clusterDomain: "corp.local",
      "xds.tls.generated.validityDays": 30,
    });
    const cert = new X509Certificate(secretData(one(custom, "Secret", `${FULLNAME}-xds-server`))["tls.crt"]!);
    expect(cert.subjectAltName).toContain("DNS:xds.example.com");
    expect(cert.subjectAltName).toContain(`DNS:${XDS_HOST}.corp.local`);
    expect(cert.subjectAltName).not.toContain("cluster.local");
    expect((Date.parse(cert.validTo) - Date.now()) / 86_400_000).toBeLessThan(31);
  });

  it("are made even without the gateway, for Envoys of your own", () => {
    const alone = template();
    expect(
      ofKind(alone, "Secret")
        .map((x) => x.metadata.name)
        .sort(),
    ).toEqual([`${FULLNAME}-xds-client`, `${FULLNAME}-xds-server`]);
  });
});

describe("xds.tls.mtls=false: TLS, no client certificates", () => {
  const r = template({ "envoy.enabled": true, "xds.tls.mtls": false });
  it("has no --xds-client-ca, and mounts no CA into the operator", () => {
    expect(xdsArgs(operator(r))).toEqual([
      "--xds-addr=0.0.0.0:18000",
      `--xds-tls-cert=${CERT_DIR}/tls.crt`,
      `--xds-tls-key=${CERT_DIR}/tls.key`,
    ]);
    expect(volume(operator(r), "xds-tls")!.secret!.items!.map((i) => i.key)).toEqual(["tls.crt", "tls.key"]);
  });
  it("gives Envoy only the CA, and a bootstrap without a client certificate", () => {
    expect(volume(envoy(r), "xds-tls")!.secret!.items!.map((i) => i.key)).toEqual(["ca.crt"]);
    const tls = xdsCluster(bootstrapOf(r)).transport_socket.typed_config.common_tls_context;
    expect(tls.tls_certificates).toBeUndefined();
    expect(tls.validation_context.trusted_ca.filename).toBe(`${CERT_DIR}/ca.crt`);
  });
});

describe("xds.tls.mode=plaintext", () => {
  const r = template({ "envoy.enabled": true, "xds.tls.mode": "plaintext" });
  it("passes --xds-plaintext and no TLS flag", () => {
    expect(xdsArgs(operator(r))).toEqual(["--xds-addr=0.0.0.0:18000", "--xds-plaintext"]);
  });
  it("mounts no certificate anywhere and makes no Secret", () => {
    for (const d of [operator(r), envoy(r)]) {
      expect(volume(d, "xds-tls")).toBeUndefined();
      expect(mount(d, "xds-tls")).toBeUndefined();
      expect(d.spec.template.metadata.annotations?.["checksum/xds-tls"]).toBeUndefined();
    }
    expect(ofKind(r, "Secret")).toHaveLength(0);
  });
  it("gives Envoy a bootstrap without a transport socket", () => {
    expect(xdsCluster(bootstrapOf(r)).transport_socket).toBeUndefined();
  });
});

describe("xds.tls.mode=secret", () => {
  const values: Values = {
    "envoy.enabled": true,
    "xds.tls.mode": "secret",
    "xds.tls.serverSecret": "xds-server-tls",
    "xds.tls.clientSecret": "envoy-xds-tls",
  };
  const r = template(values);
  it("mounts the named Secrets and makes none", () => {
    expect(ofKind(r, "Secret")).toHaveLength(0);
    expect(volume(operator(r), "xds-tls")!.secret!.secretName).toBe("xds-server-tls");
    expect(volume(envoy(r), "xds-tls")!.secret!.secretName).toBe("envoy-xds-tls");
    expect(xdsArgs(operator(r))).toContain(`--xds-client-ca=${CERT_DIR}/ca.crt`);
    // The chart cannot see these Secrets: no checksum to roll the pods on.
    expect(operator(r).spec.template.metadata.annotations).toBeUndefined();
    expect(envoy(r).spec.template.metadata.annotations["checksum/xds-tls"]).toBeUndefined();
  });
  it("checks the server certificate for serverName when given", () => {
    const b = bootstrapOf(template({ ...values, "xds.tls.serverName": "xds.fallback.example" }));
    const tls = xdsCluster(b).transport_socket.typed_config;
    expect(tls.sni).toBe("xds.fallback.example");
    expect(tls.common_tls_context.validation_context.match_typed_subject_alt_names[0].matcher.exact).toBe(
      "xds.fallback.example",
    );
    // Envoy still dials the Service.
    expect(xdsCluster(b).load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address).toBe(
      XDS_HOST,
    );
  });
  it("needs serverSecret, and clientSecret when the gateway uses xDS", () => {
    expect(refused({ "xds.tls.mode": "secret" })).toMatch(/xds\.tls\.serverSecret/);
    expect(refused({ ...values, "xds.tls.clientSecret": "" })).toMatch(/xds\.tls\.clientSecret/);
    // Without the gateway no client Secret is needed.
    expect(() => template({ "xds.tls.mode": "secret", "xds.tls.serverSecret": "xds-server-tls" })).not.toThrow();
  });
});

describe("the NetworkPolicy", () => {
  it("lets only the gateway's Envoy pods reach the xDS port, and anyone the health and metrics ports", () => {
    const r = template({ "envoy.enabled": true, "config.namespace": "edge" });
    const np = one(r, "NetworkPolicy");
    expect(np.metadata.namespace).toBe(NAMESPACE);
    expect(np.spec.podSelector.matchLabels).toEqual(operator(r).spec.selector.matchLabels);
    expect(np.spec.policyTypes).toEqual(["Ingress"]);
    const [xds, health, metrics, ...more] = np.spec.ingress;
    expect(more).toHaveLength(0);
    expect(xds.ports).toEqual([{ port: 18000, protocol: "TCP" }]);
    expect(xds.from).toHaveLength(1);
    const peer = xds.from[0];
    // The peer is exactly the gateway's pods, in their namespace.
    expect(peer.namespaceSelector).toEqual({ matchLabels: { "kubernetes.io/metadata.name": "edge" } });
    const envoyPods = envoy(r).spec.template.metadata.labels;
    for (const [k, v] of Object.entries(peer.podSelector.matchLabels)) expect(envoyPods[k]).toBe(v);
    expect(peer.podSelector.matchLabels["app.kubernetes.io/component"]).toBe("envoy");
    expect(health).toEqual({ ports: [{ port: 8081, protocol: "TCP" }] });
    expect(metrics).toEqual({ ports: [{ port: 8080, protocol: "TCP" }] });
  });

  it("adds xds.networkPolicy.from peers, and limits metrics to metricsFrom when given", () => {
    const np = one(
      template({
        "envoy.enabled": true,
        "xds.networkPolicy.from[0].namespaceSelector.matchLabels.team": "edge",
        "xds.networkPolicy.from[0].podSelector.matchLabels.app": "my-envoy",
        "xds.networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name": "monitoring",
        "metrics.port": 9090,
        "xds.port": 18443,
      }),
      "NetworkPolicy",
    );
    const [xds, , metrics] = np.spec.ingress;
    expect(xds.ports).toEqual([{ port: 18443, protocol: "TCP" }]);
    expect(xds.from).toHaveLength(2);
    expect(xds.from[1]).toEqual({
      namespaceSelector: { matchLabels: { team: "edge" } },
      podSelector: { matchLabels: { app: "my-envoy" } },
    });
    expect(metrics).toEqual({
      ports: [{ port: 9090, protocol: "TCP" }],
      from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } }],
    });
  });

  it("has no xDS rule at all (not an open one) when no Envoy is allowed", () => {
    for (const values of [{}, { "envoy.enabled": true, "envoy.configSource": "configmap" }] as Values[]) {
      const np = one(template(values), "NetworkPolicy");
      expect(np.spec.ingress.map((rule: { ports: Array<{ port: number }> }) => rule.ports[0]!.port)).toEqual([
        8081, 8080,
      ]);
    }
  });

  it("is absent when switched off, and in the ConfigMap-only mode", () => {
    expect(ofKind(template({ "xds.networkPolicy.enabled": false }), "NetworkPolicy")).toHaveLength(0);
    expect(ofKind(template({ "xds.enabled": false }), "NetworkPolicy")).toHaveLength(0);
  });
});

describe("xds.enabled=false: the ConfigMap-only mode", () => {
  const r = template({ "xds.enabled": false });
  it("passes no xDS flag, opens no xDS port, and makes no xDS Service, Secret or NetworkPolicy", () => {
    expect(xdsArgs(operator(r))).toEqual([]);
    expect(containerOf(operator(r)).args).toContain("--config-output=configmap");
    expect(containerOf(operator(r)).ports.map((p) => p.name)).toEqual(["metrics", "health"]);
    expect(volume(operator(r), "xds-tls")).toBeUndefined();
    for (const kind of ["Secret", "NetworkPolicy", "ConfigMap"]) expect(ofKind(r, kind)).toHaveLength(0);
    expect(ofKind(r, "Service").map((s) => s.metadata.name)).toEqual([`${FULLNAME}-metrics`]);
  });
});

describe("config.output", () => {
  it("configmap beside xDS: both, with the ConfigMap permissions", () => {
    const r = template({ "config.output": "configmap" });
    const args = containerOf(operator(r)).args;
    expect(args).toContain("--config-output=configmap");
    expect(args).toContain("--envoy-config-dir=/etc/envoy/fallback");
    expect(args).toContain("--xds-addr=0.0.0.0:18000");
    expect(ofKind(r, "Role").map((x) => x.metadata.name)).toContain(`${FULLNAME}-config`);
  });
});

describe("value combinations the chart refuses", () => {
  it("a gateway on xDS without the xDS server", () => {
    expect(refused({ "envoy.enabled": true, "xds.enabled": false })).toMatch(
      /envoy\.configSource=xds needs xds\.enabled=true/,
    );
  });
  it("neither xDS nor a ConfigMap", () => {
    expect(refused({ "xds.enabled": false, "config.output": "none" })).toMatch(
      /config\.output=none with xds\.enabled=false/,
    );
  });
  it("a gateway on the ConfigMap that is not written", () => {
    expect(refused({ "envoy.enabled": true, "envoy.configSource": "configmap", "config.output": "none" })).toMatch(
      /envoy\.configSource=configmap needs the ConfigMap/,
    );
  });
});
