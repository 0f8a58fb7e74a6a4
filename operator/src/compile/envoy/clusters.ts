// IR -> Envoy clusters: one per backend, each guarded by outlier detection and circuit
// breakers, and one aggregate cluster per policy that tries them in order.
import { envoyDuration as d } from "../duration.ts";
import type { EjectionIR, ExternalBackend, HealthCheckIR, LimitsIR, PolicyIR, RetryIR, ServiceBackend } from "../ir.ts";
import type { CompileOptions } from "../snapshot.ts";
import type * as envoy from "./api.gen.ts";
import { DRAINING, endpointsNameOf, lbEndpoints } from "./endpoints.ts";
import { internalEndpoint, isMediated } from "./mediated.ts";
import { ADS, TYPE, aggregateName, backendClusterName, dnsStatName } from "./types.ts";

/** The backends that are clusters (a static response is none: the route answers it). */
export const clusterBackends = (policy: PolicyIR) =>
  policy.backends.filter((b): b is ServiceBackend | ExternalBackend => b.kind !== "StaticResponse");

/** The policy's aggregate cluster: its members in order, primary first. */
export function aggregateCluster(policy: PolicyIR): envoy.Cluster {
  const names = clusterBackends(policy).map((_, i) => backendClusterName(policy.key, i));
  return {
    name: aggregateName(policy.key),
    connect_timeout: d(policy.timeouts.connectMs),
    lb_policy: "CLUSTER_PROVIDED",
    cluster_type: { name: "envoy.clusters.aggregate", typed_config: { "@type": TYPE.aggregate, clusters: names } },
    // The aggregate picks a member by the members' health, with a panic threshold of its
    // own: at the default 50, a fully ejected primary beside a fallback with under half
    // of its hosts healthy would put the aggregate in panic, spreading traffic over every
    // member by host count, the dead primary included.
    common_lb_config: NO_PANIC,
    // Retries are counted on the cluster the route names, the aggregate.
    circuit_breakers: circuitBreakers(policy.limits, policy.retry),
  };
}

/** What of the compile options a member cluster is made with. */
export type MemberOptions = Pick<CompileOptions, "trustedCA" | "clusterDomain">;

/**
 * The cluster of the policy's member `index` (0 the primary). A Service known by its
 * EndpointSlices gets its endpoints over EDS (see endpoints.ts), so that an endpoint change
 * is one small resource, or, with `inlineEndpoints` (Envoy without an xDS server), holds
 * them itself; one known only by name, and an external host, are resolved by DNS (their
 * stats are named apart: DNS_STATS_SUFFIX). A drained member's endpoints are all DRAINING,
 * and a Service member is health-checked when the policy says so.
 */
export function memberCluster(
  policy: PolicyIR,
  index: number,
  options: MemberOptions,
  inlineEndpoints = false,
): envoy.Cluster {
  const backend = clusterBackends(policy)[index]!;
  const name = backendClusterName(policy.key, index);
  // Each part spread into a cluster says its type: a spread is not checked for unknown fields.
  const common = {
    name,
    connect_timeout: d(policy.timeouts.connectMs),
    // With the default of 50, a fully ejected backend would keep its traffic (panic mode)
    // and the aggregate would never move on to the next one.
    common_lb_config: NO_PANIC,
    outlier_detection: outlierDetection(policy.ejection),
    circuit_breakers: circuitBreakers(policy.limits, policy.retry),
    // HTTP/1.1 with a 1 h idle timeout is what Envoy does unprompted: said only when it differs.
    ...(policy.timeouts.idleMs === ENVOY_IDLE_TIMEOUT_MS
      ? {}
      : ({
          typed_extension_protocol_options: {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
              "@type": TYPE.httpOptions,
              common_http_protocol_options: { idle_timeout: d(policy.timeouts.idleMs) },
              explicit_http_config: { http_protocol_options: {} },
            },
          },
        } satisfies envoy.Cluster)),
    ...(backend.kind === "Service" && policy.healthCheck
      ? ({
          health_checks: healthChecks(
            policy.healthCheck,
            `${backend.name}.${backend.namespace}.svc.${options.clusterDomain}`,
          ),
          // Otherwise Envoy keeps a host that left the EndpointSlices for as long as it passes
          // its checks: a pod on its way out would keep getting requests.
          ignore_health_on_host_removal: true,
        } satisfies envoy.Cluster)
      : {}),
  } satisfies envoy.Cluster;
  if (backend.kind === "Service" && backend.resolution === "EndpointSlices") {
    if (inlineEndpoints)
      return {
        ...common,
        type: "STATIC",
        load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: lbEndpoints(backend) }] },
      };
    return { ...common, type: "EDS", eds_cluster_config: { eds_config: ADS, service_name: endpointsNameOf(backend) } };
  }
  if (backend.kind === "External" && isMediated(backend)) {
    // Through its internal listener (mediated.ts); with its credential missing, left out, and
    // so in files (inlined), which have no SDS for the credential to come by: the backend
    // would refuse every request, and its 401 would reach the client.
    const leftOut = backend.auth === "missing" || (inlineEndpoints && backend.auth !== undefined);
    const internal: envoy.LbEndpoint[] = leftOut
      ? []
      : [{ endpoint: internalEndpoint(name), ...(backend.drained ? DRAINING : {}) }];
    return {
      ...common,
      alt_stat_name: dnsStatName(name),
      type: "STATIC",
      load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: internal }] },
    };
  }
  const endpoint: envoy.Endpoint =
    backend.kind === "External" && backend.hostRewrite
      ? { hostname: backend.host, address: { socket_address: { address: backend.host, port_value: backend.port } } }
      : { address: { socket_address: { address: backend.host, port_value: backend.port } } };
  return {
    ...common,
    alt_stat_name: dnsStatName(name),
    type: "STRICT_DNS",
    dns_lookup_family: "V4_PREFERRED",
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint, ...(backend.drained ? DRAINING : {}) }] }],
    },
    ...(backend.kind === "External" && backend.tls
      ? ({ transport_socket: upstreamTls(backend.sni, options.trustedCA) } satisfies envoy.Cluster)
      : {}),
  };
}

/**
 * One HTTP check per host. Host is the Service's own name (Envoy's default would be the
 * cluster's name, ns/policy/primary, which is no host name at all).
 */
function healthChecks(hc: HealthCheckIR, host: string): envoy.HealthCheck[] {
  return [
    {
      timeout: d(hc.timeoutMs),
      interval: d(hc.intervalMs),
      // Envoy checks a cluster that has no traffic every 60 s by default. An idle fallback
      // must be known good when the primary fails, and a primary its checks took out of
      // rotation has no traffic either: it would come back a minute late.
      no_traffic_interval: d(hc.intervalMs),
      unhealthy_threshold: hc.unhealthyThreshold,
      healthy_threshold: hc.healthyThreshold,
      // 200 to 399, as a kubelet probe has it (Envoy's default is 200 only): the /healthz a
      // Deployment's probes already use passes here too.
      http_health_check: { host, path: hc.path, expected_statuses: [{ start: 200, end: 400 }] },
    },
  ];
}

const ENVOY_IDLE_TIMEOUT_MS = 3_600_000;
const NO_PANIC: envoy.Cluster_CommonLbConfig = { healthy_panic_threshold: { value: 0 } };

function outlierDetection(e: EjectionIR): envoy.OutlierDetection {
  return {
    consecutive_5xx: e.consecutive5xx,
    consecutive_gateway_failure: e.consecutiveGatewayErrors,
    // Envoy enforces gateway-failure ejection at 0% unless told otherwise.
    enforcing_consecutive_gateway_failure: 100,
    // Envoy counts local-origin failures (connect timeouts, resets) apart only when split;
    // otherwise they count as 5xx above, and these settings would be ignored.
    ...(e.splitExternalLocalOriginErrors
      ? ({
          split_external_local_origin_errors: true,
          consecutive_local_origin_failure: e.consecutiveLocalOriginFailures,
          enforcing_consecutive_local_origin_failure: 100,
        } satisfies envoy.OutlierDetection)
      : {}),
    interval: d(e.intervalMs),
    base_ejection_time: d(e.baseEjectionMs),
    max_ejection_time: d(e.maxEjectionMs),
    max_ejection_percent: e.maxEjectionPercent,
    ...(e.failurePercentage
      ? ({
          failure_percentage_threshold: e.failurePercentage.threshold,
          failure_percentage_minimum_hosts: e.failurePercentage.minimumHosts,
          failure_percentage_request_volume: e.failurePercentage.requestVolume,
          enforcing_failure_percentage: 100,
          enforcing_failure_percentage_local_origin: 100,
        } satisfies envoy.OutlierDetection)
      : {}),
  };
}

function circuitBreakers(limits: LimitsIR, retry: RetryIR): envoy.CircuitBreakers {
  return {
    thresholds: [
      {
        priority: "DEFAULT",
        max_connections: limits.maxConnections,
        max_pending_requests: limits.maxPendingRequests,
        max_requests: limits.maxRequests,
        max_retries: limits.maxRetries,
        ...(retry.budget
          ? ({
              retry_budget: {
                budget_percent: { value: retry.budget.percent },
                min_retry_concurrency: retry.budget.minConcurrency,
              },
            } satisfies envoy.CircuitBreakers_Thresholds)
          : {}),
      },
    ],
  };
}

export function upstreamTls(sni: string, trustedCA: string): envoy.TransportSocket {
  return {
    name: "envoy.transport_sockets.tls",
    typed_config: {
      "@type": TYPE.upstreamTls,
      sni,
      common_tls_context: {
        validation_context: {
          trusted_ca: { filename: trustedCA },
          // Without a name check any certificate from a trusted CA would be accepted.
          match_typed_subject_alt_names: [{ san_type: "DNS", matcher: { exact: sni } }],
        },
      },
    },
  };
}
