// A kubeconfig cluster's proxy-url: the framework's client tunnels its connections to the
// API server through that proxy with HTTP CONNECT, and verifies the server's certificate
// inside the tunnel as it does without one. The proxy is a real Envoy terminating CONNECT,
// whose counters show the traffic went through it.

import { KubeConfig } from "@kubernetes/client-node";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestNamespace } from "../../support/kubectl.ts";
import { startEnvoy, type Envoy } from "../../support/envoy.ts";
import { freePort } from "../../support/ports.ts";
import { KubeClient, type ResourceSpec } from "../../../operator/src/kopf/index.ts";

const CONFIG_MAPS: ResourceSpec = { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap" };
let envoy: Envoy;
let proxyPort: number;
let ns: string;

/** The test's kubeconfig with its cluster's proxy-url set. */
function throughProxy(proxyUrl: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(inject("kubeconfig"));
  const cluster = kc.getCurrentCluster()!;
  kc.clusters = kc.clusters.map((c) => (c.name === cluster.name ? { ...c, proxyUrl } : c));
  return kc;
}

/** An Envoy that answers CONNECT to the API server's address, and nothing else. */
function connectProxyBootstrap(listen: number, admin: number, server: URL): string {
  const router = {
    name: "envoy.filters.http.router",
    typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
  };
  return JSON.stringify({
    admin: { address: { socket_address: { address: "127.0.0.1", port_value: admin } } },
    static_resources: {
      listeners: [
        {
          name: "connect",
          address: { socket_address: { address: "127.0.0.1", port_value: listen } },
          filter_chains: [
            {
              filters: [
                {
                  name: "envoy.filters.network.http_connection_manager",
                  typed_config: {
                    "@type":
                      "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    stat_prefix: "connect",
                    upgrade_configs: [{ upgrade_type: "CONNECT" }],
                    http_filters: [router],
                    route_config: {
                      virtual_hosts: [
                        {
                          name: "apiserver",
                          domains: [server.host],
                          routes: [
                            {
                              match: { connect_matcher: {} },
                              route: {
                                cluster: "apiserver",
                                upgrade_configs: [{ upgrade_type: "CONNECT", connect_config: {} }],
                              },
                            },
                          ],
                        },
                      ],
                    },
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [
        {
          name: "apiserver",
          type: "STATIC",
          connect_timeout: "2s",
          load_assignment: {
            cluster_name: "apiserver",
            endpoints: [
              {
                lb_endpoints: [
                  {
                    endpoint: {
                      address: { socket_address: { address: server.hostname, port_value: Number(server.port) } },
                    },
                  },
                ],
              },
            ],
          },
        },
      ],
    },
  });
}

beforeAll(async () => {
  ns = await createTestNamespace(inject("kubeconfig"), "kopf-proxy");
  const kc = new KubeConfig();
  kc.loadFromFile(inject("kubeconfig"));
  const server = new URL(kc.getCurrentCluster()!.server);
  proxyPort = await freePort();
  const admin = await freePort();
  const config = join(mkdtempSync(join(tmpdir(), "kopf-proxy-")), "envoy.json");
  writeFileSync(config, connectProxyBootstrap(proxyPort, admin, server));
  envoy = await startEnvoy({ config, admin: { address: "127.0.0.1", port: admin } });
}, 60_000);

afterAll(async () => {
  await envoy?.stop();
});

describe("a kubeconfig cluster's proxy-url", () => {
  it("tunnels its requests through the proxy (CONNECT), with TLS to the API server inside", async () => {
    const client = new KubeClient(throughProxy(`http://127.0.0.1:${proxyPort}`));
    const before = await envoy.stat("cluster.apiserver.upstream_cx_total");
    await client.create(CONFIG_MAPS, { metadata: { name: "via-proxy", namespace: ns }, data: { n: "1" } });
    const got = await client.get(CONFIG_MAPS, ns, "via-proxy");
    expect((got as { data?: Record<string, string> }).data).toEqual({ n: "1" });
    expect(await envoy.stat("cluster.apiserver.upstream_cx_total")).toBeGreaterThan(before);
    expect(await envoy.stat("http.connect.downstream_rq_total")).toBeGreaterThan(0);
  });

  it("refuses a proxy it cannot use, naming the cluster and the proxy-url", async () => {
    const client = new KubeClient(throughProxy("socks5://127.0.0.1:1080"));
    await expect(client.get(CONFIG_MAPS, ns, "via-proxy")).rejects.toThrow(
      /proxy-url "socks5:\/\/127\.0\.0\.1:1080": only http:\/\/ and https:\/\/ proxies are supported/,
    );
  });
});
