// Envoy v3 type URLs, the names this compiler gives to what it generates, and the shape of
// its output: resources by type and name, each knowing which policies it carries.
import type * as envoy from "./api.gen.ts";

const T = "type.googleapis.com/envoy.";
export const TYPE = {
  cluster: `${T}config.cluster.v3.Cluster`,
  listener: `${T}config.listener.v3.Listener`,
  routeConfiguration: `${T}config.route.v3.RouteConfiguration`,
  scopedRouteConfiguration: `${T}config.route.v3.ScopedRouteConfiguration`,
  clusterLoadAssignment: `${T}config.endpoint.v3.ClusterLoadAssignment`,
  secret: `${T}extensions.transport_sockets.tls.v3.Secret`,
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
  metricsService: `${T}config.metrics.v3.MetricsServiceConfig`,
  internalListener: `${T}extensions.bootstrap.internal_listener.v3.InternalListener`,
  headerMutation: `${T}extensions.filters.http.header_mutation.v3.HeaderMutation`,
  credentialInjector: `${T}extensions.filters.http.credential_injector.v3.CredentialInjector`,
  genericCredential: `${T}extensions.http.injected_credentials.generic.v3.Generic`,
  transform: `${T}extensions.filters.http.transform.v3.TransformConfig`,
  lua: `${T}extensions.filters.http.lua.v3.Lua`,
} as const;

/**
 * Where Envoy gets what a resource refers to (a cluster's endpoints, a listener's routes):
 * over the ADS stream its bootstrap opened, Delta or state-of-the-world as that says.
 * Envoy loading files gets the same resources with these references inlined (files.ts).
 */
export const ADS = { ads: {}, resource_api_version: "V3" } as const satisfies envoy.ConfigSource;

export const HTTP_LISTENER = "fallback-http";
/** The listener's scoped routes; and the one route configuration Envoy gets from files. */
export const ROUTE_SCOPES = "fallback-scopes";
export const ROUTE_CONFIG = "fallback-routes";

/** A Service's route configuration: ns/name. */
export const routesName = (namespace: string, service: string) => `${namespace}/${service}`;
/** The aggregate cluster of a policy carries the policy's own name. */
export const aggregateName = (policyKey: string) => policyKey;
export const backendClusterName = (policyKey: string, index: number) =>
  index === 0 ? `${policyKey}/primary` : `${policyKey}/fallback-${index}`;
/**
 * What a member cluster whose hosts Envoy finds by DNS names its stats with (alt_stat_name):
 * only such a member's host count (`membership_total`) is kept and reported, for the
 * operator knows every other member's hosts (the endpoints it sends), and a stat per member
 * in every report is what the reading of reports costs (docs/benchmarks.md, "Live state").
 */
export const DNS_STATS_SUFFIX = "/dns";
export const dnsStatName = (member: string) => `${member}${DNS_STATS_SUFFIX}`;
/** The endpoints of one Service port, shared by every cluster that sends to it: ns/name:port. */
export const endpointsName = (namespace: string, service: string, port: number) => `${namespace}/${service}:${port}`;
/**
 * The same endpoints, each marked DRAINING, for the clusters of the policies that drain that
 * Service port (spec.drain): ns/name:port/drained. Apart from endpointsName, so that a drain
 * changes nothing for the policies that send to the port as usual.
 */
export const drainedEndpointsName = (namespace: string, service: string, port: number) =>
  `${endpointsName(namespace, service, port)}/drained`;

/** The xDS resource types, in the order Envoy should get them (clusters before what routes to them). */
export const RESOURCE_TYPES = ["cluster", "endpoint", "listener", "scope", "route", "secret"] as const;
export type ResourceType = (typeof RESOURCE_TYPES)[number];
/** The Envoy message of each resource type (api.gen.ts has them as the compiler writes them). */
export type ResourceValue = {
  cluster: envoy.Cluster;
  endpoint: envoy.ClusterLoadAssignment;
  listener: envoy.Listener;
  scope: envoy.ScopedRouteConfiguration;
  route: envoy.RouteConfiguration;
  secret: envoy.Secret;
};
export const TYPE_URL: Record<ResourceType, string> = {
  cluster: TYPE.cluster,
  endpoint: TYPE.clusterLoadAssignment,
  listener: TYPE.listener,
  scope: TYPE.scopedRouteConfiguration,
  route: TYPE.routeConfiguration,
  secret: TYPE.secret,
};

/**
 * One resource of the compile output. Its value is built when asked for, anew each time
 * (a sink that keeps encoded bytes need not keep the object tree, which would be large:
 * docs/benchmarks.md), and `source` says when it can have changed: while
 * a resource's source is the very same object (a policy's IR, a Service's endpoints), its
 * value is the same too.
 */
export type Resource<Value extends object = object> = {
  name: string;
  /** Keys of the policies whose config this is; empty for what every policy shares (the listener). */
  owners: readonly string[];
  source: object;
  value(): Value;
  /**
   * The value as Envoy takes it without an xDS server (a static bootstrap, or files), where
   * that differs: what it would fetch over ADS inlined (see files.ts).
   */
  inlined?(): Value;
  /**
   * What Envoy must have applied before this resource is any use, or safe to send: an
   * aggregate cluster's members and their endpoints. (Envoy's aggregate clusters also cost
   * it work on every cluster that becomes active while they exist: 10,000 aggregates sent
   * before their 30,000 members made a fresh Envoy take several times as long.)
   */
  requires?(): Dependency[];
  /** Of a route configuration: its virtual hosts, for Envoy that takes every one in one (files.ts). */
  virtualHosts?: VirtualHost[];
};
/** A policy's virtual host: its value is made from its IR, the source. */
export type VirtualHost = { owner: string; source: object; value(): envoy.VirtualHost };
export type Dependency = { type: ResourceType; name: string };

/** Resources by type, each list in a fixed order. */
export type Resources = { [T in ResourceType]: Resource<ResourceValue[T]>[] };
