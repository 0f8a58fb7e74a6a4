// Envoy v3 type URLs and the names this compiler gives to what it generates.

const T = "type.googleapis.com/envoy.";
export const TYPE = {
  cluster: `${T}config.cluster.v3.Cluster`,
  listener: `${T}config.listener.v3.Listener`,
  aggregate: `${T}extensions.clusters.aggregate.v3.ClusterConfig`,
  hcm: `${T}extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`,
  router: `${T}extensions.filters.http.router.v3.Router`,
  httpOptions: `${T}extensions.upstreams.http.v3.HttpProtocolOptions`,
  upstreamTls: `${T}extensions.transport_sockets.tls.v3.UpstreamTlsContext`,
  previousPriorities: `${T}extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig`,
  previousHosts: `${T}extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate`,
  internalListener: `${T}extensions.bootstrap.internal_listener.v3.InternalListener`,
} as const;

export const HTTP_LISTENER = "fallback-http";
export const ROUTE_CONFIG = "fallback-routes";

/** The aggregate cluster of a policy carries the policy's own name. */
export const aggregateName = (policyKey: string) => policyKey;
export const backendClusterName = (policyKey: string, index: number) =>
  index === 0 ? `${policyKey}/primary` : `${policyKey}/fallback-${index}`;
export const staticListenerName = (policyKey: string) => `${policyKey}/static`;

export type Resources = { clusters: object[]; listeners: object[] };
