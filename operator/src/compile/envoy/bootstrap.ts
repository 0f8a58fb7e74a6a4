// Envoy resources -> what Envoy is started with: either one bootstrap holding everything
// under static_resources, or the file-based set (cds.yaml, lds.yaml and a bootstrap.yaml
// that watches their folder) that the operator writes into a ConfigMap.
import { envoyDuration } from "../duration.ts";
import type { CompileOptions } from "../snapshot.ts";
import type * as envoy from "./api.gen.ts";
import { inlinedConfig, inlinedValue } from "./files.ts";
import { ADS, DNS_STATS_SUFFIX, TYPE, type Resources } from "./types.ts";

function base(options: CompileOptions): envoy.Bootstrap {
  return {
    node: { id: "fallback-envoy", cluster: "fallback-envoy" },
    admin: { address: { socket_address: { address: options.admin.address, port_value: options.admin.port } } },
    bootstrap_extensions: INTERNAL_LISTENERS,
  };
}

/** External backends are reached through internal listeners (mediated.ts), which Envoy runs with this extension. */
const INTERNAL_LISTENERS: envoy.ConfigCore_TypedExtensionConfig[] = [
  { name: "envoy.bootstrap.internal_listener", typed_config: { "@type": TYPE.internalListener } },
];

export function staticBootstrap(resources: Resources, options: CompileOptions): envoy.Bootstrap {
  const config = inlinedConfig(resources, options.listen);
  const listener = config.listener(config.virtualHosts.map((v) => v.value()));
  return {
    ...base(options),
    static_resources: {
      listeners: [listener, ...config.internalListeners.map(inlinedValue)],
      clusters: config.clusters.map(inlinedValue),
    },
  };
}

export const CONFIG_FILES = { bootstrap: "bootstrap.yaml", clusters: "cds.yaml", listeners: "lds.yaml" } as const;

// Envoy reloads a path_config_source when the watched folder sees a move, which is how the
// kubelet swaps a ConfigMap volume's `..data` link; so watch the folder, not the file.
function fileSource(options: CompileOptions, file: string): envoy.ConfigSource {
  const dir = options.configDir.replace(/\/$/, "");
  return {
    path_config_source: { path: `${dir}/${file}`, watched_directory: { path: dir } },
    resource_api_version: "V3",
  };
}

export function fileBootstrap(options: CompileOptions): envoy.Bootstrap {
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
  /** Keep every stat Envoy has (default: those listed in KEPT_STATS). */
  allStats?: boolean;
  /** How often Envoy reports its stats to the operator (which tells from them who serves); default STATS_INTERVAL_MS. */
  statsIntervalMs?: number;
};

export const STATS_INTERVAL_MS = 5_000;

export const XDS_CLUSTER = "fallback-xds";

/**
 * The stats an Envoy on this bootstrap keeps: Envoy's own and the listener's, and of each
 * cluster what a person (or the operator) reads of a fallback: requests, their outcome,
 * retries, ejections and health. Envoy's default of every stat of every cluster is some 150
 * per cluster: at 10,000 policies (40,000 clusters) several GB, and most of the time a fresh
 * Envoy takes to apply them (docs/benchmarks.md). Istio keeps a short list by default too.
 * Every kept stat is also in each stats report to the operator: per cluster, only what is
 * read (a cluster's membership_degraded and update_success went, 80,000 of a report's 200,000
 * metric families at 10,000 policies; so did a member's host count, but where Envoy resolves
 * its hosts). Of the listener's HTTP stats, its own are kept (no "."
 * after `http.fallback.`) and its scopes', not those of each Service's route configuration:
 * seven stats (one a histogram) per Service, more than half of a report at 10,000 policies.
 */
export const KEPT_STATS = {
  /** RE2, matched against a stat's whole name. */
  regexes: ["^http\\.fallback\\.[^.]+$"],
  prefixes: [
    "server.",
    "cluster_manager.",
    "listener_manager.",
    "listener.",
    "http.fallback.scoped_rds.",
    "control_plane.",
    "runtime.",
    `cluster.${XDS_CLUSTER}.`,
  ],
  /** The end of each kept stat's name, in a cluster. */
  clusterSuffixes: [
    ".upstream_rq_total",
    ".upstream_rq_2xx",
    ".upstream_rq_4xx",
    ".upstream_rq_5xx",
    ".upstream_rq_timeout",
    ".upstream_rq_retry",
    ".upstream_rq_retry_success",
    ".upstream_rq_retry_overflow",
    ".upstream_rq_pending_overflow",
    ".upstream_cx_connect_fail",
    // A cluster's host count only where the operator does not know it (DNS_STATS_SUFFIX).
    `${DNS_STATS_SUFFIX}.membership_total`,
    ".membership_healthy",
    ".outlier_detection.ejections_active",
    ".outlier_detection.ejections_enforced_total",
    ".health_check.healthy",
    ".health_check.failure",
  ],
};
/** Node metadata key: the address this Envoy's listener binds (see fallbackctl bootstrap --listen). */
export const LISTEN_METADATA = "fallback.dev/listen";

/**
 * The bootstrap of an Envoy that gets everything over one ADS stream from the operator:
 * clusters, endpoints, the listener, its routes and secrets. Delta by default: a change is
 * sent as the resources that changed, not as every resource of its type.
 */
export function adsBootstrap(options: AdsBootstrapOptions): envoy.Bootstrap {
  const tls = options.tls;
  return {
    node: {
      id: options.nodeId,
      cluster: options.nodeCluster,
      ...(options.listen
        ? ({ metadata: { [LISTEN_METADATA]: `${options.listen.address}:${options.listen.port}` } } satisfies envoy.Node)
        : {}),
    },
    admin: { address: { socket_address: { address: options.admin.address, port_value: options.admin.port } } },
    bootstrap_extensions: INTERNAL_LISTENERS,
    ...(options.allStats
      ? {}
      : ({
          stats_config: {
            stats_matcher: {
              inclusion_list: {
                patterns: [
                  ...KEPT_STATS.prefixes.map((prefix) => ({ prefix })),
                  ...KEPT_STATS.regexes.map((regex) => ({ safe_regex: { regex } })),
                  ...KEPT_STATS.clusterSuffixes.map((suffix) => ({ suffix })),
                ],
              },
            },
          },
        } satisfies envoy.Bootstrap)),
    // Envoy pushes its stats to the operator, over the stream it gets its config on: the
    // operator reads from them which backend of each policy serves (the live state). Counters
    // as deltas, so that several Envoys' requests simply add up. Batches keep each message
    // well under gRPC's limits at 10,000 policies.
    stats_sinks: [
      {
        name: "envoy.stat_sinks.metrics_service",
        typed_config: {
          "@type": TYPE.metricsService,
          transport_api_version: "V3",
          report_counters_as_deltas: true,
          batch_size: 10_000,
          grpc_service: { envoy_grpc: { cluster_name: XDS_CLUSTER } },
        },
      },
    ],
    stats_flush_interval: envoyDuration(options.statsIntervalMs ?? STATS_INTERVAL_MS),
    // A cluster's worker-thread copies, and its traffic stats, are made when it is first
    // used: most of 40,000 clusters never carry a request.
    cluster_manager: { enable_deferred_cluster_creation: true },
    // After each xDS update Envoy hands its free heap back to the kernel once more than this
    // is free (100 MB by default), and the next update faults it all in again, each page
    // zeroed by the kernel: with a large config that churn, not the config, takes most of a
    // fresh Envoy's time (docs/benchmarks.md, "xDS"). Envoy's peak is the same either way.
    memory_allocator_manager: { max_unfreed_memory_bytes: 1024 ** 3 },
    deferred_stat_options: { enable_deferred_creation_stats: true },
    dynamic_resources: {
      ads_config: {
        api_type: options.sotw ? "GRPC" : "DELTA_GRPC",
        transport_api_version: "V3",
        // After the stream breaks (the operator restarted, or moved), try again soon: Envoy
        // keeps serving what it has meanwhile.
        grpc_services: [
          {
            envoy_grpc: {
              cluster_name: XDS_CLUSTER,
              retry_policy: { retry_back_off: { base_interval: "0.25s", max_interval: "5s" } },
            },
          },
        ],
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
            endpoints: [
              {
                lb_endpoints: options.xdsServers.map(({ address, port }) => ({
                  endpoint: { address: { socket_address: { address, port_value: port } } },
                })),
              },
            ],
          },
          typed_extension_protocol_options: {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
              "@type": TYPE.httpOptions,
              // gRPC is HTTP/2; pings find an operator gone without a FIN.
              explicit_http_config: {
                http2_protocol_options: { connection_keepalive: { interval: "30s", timeout: "10s" } },
              },
            },
          },
          ...(tls
            ? ({
                transport_socket: {
                  name: "envoy.transport_sockets.tls",
                  typed_config: {
                    "@type": TYPE.upstreamTls,
                    ...(tls.serverName ? ({ sni: tls.serverName } satisfies envoy.UpstreamTlsContext) : {}),
                    common_tls_context: {
                      alpn_protocols: ["h2"],
                      validation_context: {
                        trusted_ca: { filename: tls.caFile },
                        ...(tls.serverName
                          ? ({
                              match_typed_subject_alt_names: [{ san_type: "DNS", matcher: { exact: tls.serverName } }],
                            } satisfies envoy.CertificateValidationContext)
                          : {}),
                      },
                      ...(tls.certFile && tls.keyFile
                        ? ({
                            tls_certificates: [
                              { certificate_chain: { filename: tls.certFile }, private_key: { filename: tls.keyFile } },
                            ],
                          } satisfies envoy.CommonTlsContext)
                        : {}),
                    },
                  },
                },
              } satisfies envoy.Cluster)
            : {}),
        },
      ],
    },
  };
}
