// The Envoy API codec (operator/src/xds/envoy-api.ts) on the descriptor set setup.sh
// writes: the compiler's type URLs and golden bootstraps are valid Envoy API (no unknown
// field, no unresolvable @type), mistakes are named, and the xDS envelopes carry resources
// encoded once.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { describe, expect, it, vi } from "vitest";
import { parseAllDocuments } from "yaml";
import { TYPE } from "../../../operator/src/compile/envoy/types.ts";
import {
  anyOf,
  decodeMessage,
  encodeJson,
  encodeMessage,
  encodeResource,
  envoyApiPath,
  envoyRegistry,
  messageSchema,
  typeNameOf,
} from "../../../operator/src/xds/envoy-api.ts";

const CASES_DIR = join(import.meta.dirname, "../../golden/cases");
const BOOTSTRAP = "envoy.config.bootstrap.v3.Bootstrap";
const CLUSTER = "envoy.config.cluster.v3.Cluster";

describe("the Envoy API descriptors, when missing", () => {
  it("make the first use fail with a message that says to run make setup", async () => {
    vi.stubEnv("FALLBACK_ENVOY_API", "/nonexistent/envoy-api.binpb");
    vi.resetModules(); // a fresh module: the real one may have loaded the set already
    try {
      const fresh = await import("../../../operator/src/xds/envoy-api.ts");
      expect(() => fresh.messageSchema(CLUSTER)).toThrow(/\/nonexistent\/envoy-api\.binpb.*run `make setup`/);
    } finally {
      vi.unstubAllEnvs();
      vi.resetModules();
    }
  });
});

describe.skipIf(!existsSync(envoyApiPath()))(
  `the Envoy API codec (skipped: no ${envoyApiPath()}; run make setup)`,
  () => {
    it("resolves every type URL the compiler uses", () => {
      const registry = envoyRegistry();
      for (const [key, url] of Object.entries(TYPE)) {
        expect(url, key).toMatch(/^type\.googleapis\.com\//);
        expect(registry.getMessage(typeNameOf(url)), `TYPE.${key} = ${url}`).toBeDefined();
      }
    });

    const cases = readdirSync(CASES_DIR)
      .filter((f) => f.endsWith(".out.yaml"))
      .sort();
    it.each(cases)("parses the Envoy bootstrap of golden case %s as a Bootstrap", (file) => {
      const docs = parseAllDocuments(readFileSync(join(CASES_DIR, file), "utf8"));
      expect(docs.length, "results, then the bootstrap").toBeGreaterThanOrEqual(2);
      // Throws, naming the field, on anything the Envoy API does not have.
      expect(encodeJson(BOOTSTRAP, docs[1]!.toJS() as object).length).toBeGreaterThan(0);
    });

    it("names the type asked for and the unknown field, however deep", () => {
      const cluster = {
        name: "a",
        load_assignment: {
          cluster_name: "a",
          endpoints: [
            { lb_endpoints: [{ endpoint: { address: { socket_address: { address: "10.0.0.1", port_valu: 80 } } } }] },
          ],
        },
      };
      expect(() => encodeResource(TYPE.cluster, cluster)).toThrow(
        'cannot encode envoy.config.cluster.v3.Cluster: cannot decode message envoy.config.core.v3.SocketAddress from JSON: key "port_valu" is unknown',
      );
    });

    it("names an @type that is not in the Envoy API, and a bad value's field", () => {
      const tls = (typed_config: object) => ({
        name: "a",
        transport_socket: { name: "envoy.transport_sockets.tls", typed_config },
      });
      expect(() => encodeJson(CLUSTER, tls({ "@type": "type.googleapis.com/envoy.nope.v3.Nope" }))).toThrow(
        /^cannot encode envoy\.config\.cluster\.v3\.Cluster: .*type\.googleapis\.com\/envoy\.nope\.v3\.Nope is not in the type registry/,
      );
      expect(() => encodeJson(CLUSTER, tls({ "@type": TYPE.upstreamTls, sni: 443 }))).toThrow(
        /field envoy\.extensions\.transport_sockets\.tls\.v3\.UpstreamTlsContext\.sni from JSON/,
      );
      expect(() => encodeJson(CLUSTER, { name: "a", lb_policy: "FASTEST" })).toThrow(
        /enum envoy\.config\.cluster\.v3\.Cluster\.LbPolicy from JSON: "FASTEST"/,
      );
      expect(() => messageSchema("envoy.config.cluster.v3.Clusterr")).toThrow(
        /Clusterr is not a message type of the Envoy API/,
      );
    });

    it("round-trips a Cluster to proto3 JSON, nested Any included", () => {
      const bytes = encodeResource(TYPE.cluster, {
        name: "shop/web/primary",
        type: "STRICT_DNS",
        connect_timeout: "1s",
        lb_policy: "ROUND_ROBIN",
        typed_extension_protocol_options: {
          "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": TYPE.httpOptions,
            explicit_http_config: { http2_protocol_options: {} },
          },
        },
        outlier_detection: { consecutive_5xx: 3, base_ejection_time: "1.5s" },
      });
      expect(decodeMessage(CLUSTER, bytes)).toEqual({
        name: "shop/web/primary",
        type: "STRICT_DNS",
        connect_timeout: "1s",
        // ROUND_ROBIN is the enum's zero: proto3 JSON leaves it out.
        typed_extension_protocol_options: {
          "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": TYPE.httpOptions,
            explicit_http_config: { http2_protocol_options: {} },
          },
        },
        outlier_detection: { consecutive_5xx: 3, base_ejection_time: "1.500s" },
      });
    });

    it("wraps encoded resources in a DiscoveryResponse as they are, and decodes requests to plain JSON", () => {
      const cluster = encodeResource(TYPE.cluster, { name: "a", connect_timeout: "0.25s" });
      const response = encodeMessage("envoy.service.discovery.v3.DiscoveryResponse", {
        versionInfo: "7",
        typeUrl: TYPE.cluster,
        nonce: "n1",
        resources: [anyOf(TYPE.cluster, cluster)],
      });
      const reflected = fromBinary(
        messageSchema("envoy.service.discovery.v3.DiscoveryResponse"),
        response,
      ) as unknown as {
        resources: { typeUrl: string; value: Uint8Array }[];
      };
      expect(reflected.resources[0]!.value).toEqual(cluster);
      expect(decodeMessage("envoy.service.discovery.v3.DiscoveryResponse", response)).toEqual({
        version_info: "7",
        type_url: TYPE.cluster,
        nonce: "n1",
        resources: [{ "@type": TYPE.cluster, name: "a", connect_timeout: "0.250s" }],
      });

      const request = {
        node: { id: "fallback-envoy", cluster: "fallback-envoy" },
        type_url: TYPE.cluster,
        resource_names_subscribe: ["a", "b"],
        initial_resource_versions: { a: "7" },
        response_nonce: "n1",
        error_detail: { code: 3, message: "rejected" },
      };
      const delta = "envoy.service.discovery.v3.DeltaDiscoveryRequest";
      expect(decodeMessage(delta, encodeJson(delta, request))).toEqual(request);
    });
  },
);
