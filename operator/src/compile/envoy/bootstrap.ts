// Envoy resources -> what Envoy is started with: either one bootstrap holding everything
// under static_resources, or the file-based set (cds.yaml, lds.yaml and a bootstrap.yaml
// that watches their folder) that the operator writes into a ConfigMap.
import type { CompileOptions } from "../snapshot.ts";
import { inlinedConfig, inlinedValue } from "./files.ts";
import { ADS, TYPE, type Resources } from "./types.ts";

function base(options: CompileOptions): object {
  return {
    node: { id: "fallback-envoy", cluster: "fallback-envoy" },
    admin: { address: { socket_address: { address: options.admin.address, port_value: options.admin.port } } },
  };
}

export function staticBootstrap(resources: Resources, options: CompileOptions): object {
  const config = inlinedConfig(resources, options.listen);
  const listener = config.listener(config.virtualHosts.map((v) => v.value()));
  return { ...base(options), static_resources: { listeners: [listener], clusters: config.clusters.map(inlinedValue) } };
}

export const CONFIG_FILES = { bootstrap: "bootstrap.yaml", clusters: "cds.yaml", listeners: "lds.yaml" } as const;

// Envoy reloads a path_config_source when the watched folder sees a move, which is how the
// kubelet swaps a ConfigMap volume's `..data` link; so watch the folder, not the file.
function fileSource(options: CompileOptions, file: string) {
  const dir = options.configDir.replace(/\/$/, "");
  return { path_config_source: { path: `${dir}/${file}`, watched_directory: { path: dir } }, resource_api_version: "V3" };
}

export function fileBootstrap(options: CompileOptions): object {
  return {
    ...base(options),
    dynamic_resources: {
      cds_config: fileSource(options, CONFIG_FILES.clusters),
      lds_config: fileSource(options, CONFIG_FILES.listeners),
    },
  };
}

export type AdsBootstrapOptions = {
  /** The operator's xDS port(s): each is a host Envoy may stream from. */
  xdsServers: { address: string; port: number }[];
  admin: { address: string; port: number };
  nodeId: string;
  nodeCluster: string;
  /** State-of-the-world instead of Delta. */
  sotw?: boolean;
  /** Where this Envoy's listener should bind, when not where the operator says (node metadata LISTEN_METADATA). */
  listen?: { address: string; port: number };
  /** TLS to the operator, with files in Envoy's file system: its CA, and a client certificate for mTLS. */
  tls?: { caFile: string; certFile?: string; keyFile?: string; serverName?: string };
};

export const XDS_CLUSTER = "fallback-xds";
/** Node metadata key: the address this Envoy's listener binds (see fallbackctl bootstrap --listen). */
export const LISTEN_METADATA = "fallback.dev/listen";

/**
 * The bootstrap of an Envoy that gets everything over one ADS stream from the operator:
 * clusters, endpoints, the listener, its routes and secrets. Delta by default: a change is
 * sent as the resources that changed, not as every resource of its type.
 */
export function adsBootstrap(options: AdsBootstrapOptions): object {
  const tls = options.tls;
  return {
    node: {
      id: options.nodeId,
      cluster: options.nodeCluster,
      ...(options.listen ? { metadata: { [LISTEN_METADATA]: `${options.listen.address}:${options.listen.port}` } } : {}),
    },
    admin: { address: { socket_address: { address: options.admin.address, port_value: options.admin.port } } },
    dynamic_resources: {
      ads_config: {
        api_type: options.sotw ? "GRPC" : "DELTA_GRPC",
        transport_api_version: "V3",
        // After the stream breaks (the operator restarted, or moved), try again soon: Envoy
        // keeps serving what it has meanwhile.
        grpc_services: [{ envoy_grpc: { cluster_name: XDS_CLUSTER, retry_policy: { retry_back_off: { base_interval: "0.25s", max_interval: "5s" } } } }],
        set_node_on_first_message_only: true,
      },
      cds_config: ADS,
      lds_config: ADS,
    },
    static_resources: {
      clusters: [
        {
          name: XDS_CLUSTER,
          type: "STRICT_DNS",
          connect_timeout: "1s",
          load_assignment: {
            cluster_name: XDS_CLUSTER,
            endpoints: [{ lb_endpoints: options.xdsServers.map(({ address, port }) => ({ endpoint: { address: { socket_address: { address, port_value: port } } } })) }],
          },
          typed_extension_protocol_options: {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
              "@type": TYPE.httpOptions,
              // gRPC is HTTP/2; pings find an operator gone without a FIN.
              explicit_http_config: { http2_protocol_options: { connection_keepalive: { interval: "30s", timeout: "10s" } } },
            },
          },
          ...(tls
            ? {
                transport_socket: {
                  name: "envoy.transport_sockets.tls",
                  typed_config: {
                    "@type": TYPE.upstreamTls,
                    ...(tls.serverName ? { sni: tls.serverName } : {}),
                    common_tls_context: {
                      alpn_protocols: ["h2"],
                      validation_context: {
                        trusted_ca: { filename: tls.caFile },
                        ...(tls.serverName ? { match_typed_subject_alt_names: [{ san_type: "DNS", matcher: { exact: tls.serverName } }] } : {}),
                      },
                      ...(tls.certFile && tls.keyFile
                        ? { tls_certificates: [{ certificate_chain: { filename: tls.certFile }, private_key: { filename: tls.keyFile } }] }
                        : {}),
                    },
                  },
                },
              }
            : {}),
        },
      ],
    },
  };
}
