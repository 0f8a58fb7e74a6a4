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
  customResponse: `${T}extensions.filters.http.custom_response.v3.CustomResponse`,
  localResponsePolicy: `${T}extensions.http.custom_response.local_response_policy.v3.LocalResponsePolicy`,
  statusInput: `${T}type.matcher.v3.HttpResponseStatusCodeMatchInput`,
  statusClassInput: `${T}type.matcher.v3.HttpResponseStatusCodeClassMatchInput`,
  localReplyInput: `${T}type.matcher.v3.HttpResponseLocalReplyMatchInput`,
} as const;

export const HTTP_LISTENER = "fallback-http";
export const ROUTE_CONFIG = "fallback-routes";

/** The aggregate cluster of a policy carries the policy's own name. */
export const aggregateName = (policyKey: string) => policyKey;
export const backendClusterName = (policyKey: string, index: number) =>
  index === 0 ? `${policyKey}/primary` : `${policyKey}/fallback-${index}`;

/**
 * What compile() made for Envoy. The clusters are built while they are iterated, one policy
 * at a time, so a renderer can write each and let it go: at 10,000 policies the whole tree
 * of cluster objects would hold some 80 MB that nothing needs at once. Each iteration
 * builds them anew (the same, as compile is deterministic).
 */
export type Resources = { clusters: Iterable<object>; listeners: object[] };
