// The programmed policies' IRs -> Envoy resources by type and name: for each policy its
// aggregate and member clusters; the endpoints of each Service port any of them sends to;
// for each governed Service a route configuration (a virtual host per policy on it) and the
// scopes that lead its host names there; and the one listener.
//
// What is made of an IR is kept (ResourceMemo, owned by the Compiler): an unchanged policy
// hands out the very resource objects of the last compile, which is how a sink tells at a
// glance what changed, and a sync at 10,000 policies allocates almost nothing for them.
import type { ExternalBackend, PolicyIR, ServiceBackend } from "../ir.ts";
import type { Credential } from "../resolve.ts";
import type { CompileOptions } from "../snapshot.ts";
import type * as envoy from "./api.gen.ts";
import { aggregateCluster, clusterBackends, memberCluster, upstreamTls, type MemberOptions } from "./clusters.ts";
import { internalListener, isMediated, upstreamCluster, upstreamName } from "./mediated.ts";
import { endpointsNameOf, loadAssignment } from "./endpoints.ts";
import { httpListener } from "./listeners.ts";
import { hostNames, routeConfiguration, routeScope, virtualHost } from "./routes.ts";
import {
  HTTP_LISTENER,
  aggregateName,
  backendClusterName,
  routesName,
  type Dependency,
  type Resource,
  type Resources,
  type VirtualHost,
} from "./types.ts";

/** What earlier compiles made, for the next to hand out again. */
export class ResourceMemo {
  readonly ofPolicy = new WeakMap<PolicyIR, MadeOfPolicy>();
  endpoints = new Map<string, EndpointsResource>();
  routes = new Map<string, RoutesResource>();
  scopes = new Map<string, ScopeResource>();
  secrets = new Map<string, SecretResource>();
  /** The last call's policies, who uses which endpoints and Service, and what it returned. */
  last:
    | {
        policies: PolicyIR[];
        endpointUsers: Map<string, Users<MadeOfPolicy>>;
        byService: Map<string, Users<PolicyIR>>;
        resources: Resources;
      }
    | undefined;
}

/** One user, or several in key order: most endpoints and routes belong to one policy. */
type Users<T> = T | T[];

/**
 * `policies` sorted by key. Each list follows their order: a policy's clusters as aggregate,
 * primary, fallbacks; endpoints, routes and scopes as the first policy to need them has them.
 */
export function envoyResources(
  policies: PolicyIR[],
  options: CompileOptions,
  memo = new ResourceMemo(),
  credentials: Credential[] = [],
): Resources {
  const last = memo.last;
  const resources =
    last && samePolicies(last.policies, policies)
      ? inPlace(policies, options, memo, last)
      : whole(policies, options, memo);
  return withSecrets(resources, policies, credentials, memo);
}

/**
 * The SDS secrets: each credential a programmed policy's backend sends, owned by the
 * policies that send it. Made anew only when its Secret or its users change.
 */
function withSecrets(
  resources: Resources,
  policies: PolicyIR[],
  credentials: Credential[],
  memo: ResourceMemo,
): Resources {
  if (!credentials.length && !memo.secrets.size) return resources;
  const users = new Map<string, string[]>();
  for (const ir of policies) {
    for (const b of ir.backends) {
      if (b.kind === "External" && b.auth && b.auth !== "missing")
        (users.get(b.auth.secret) ?? users.set(b.auth.secret, []).get(b.auth.secret)!).push(ir.key);
    }
  }
  const secrets = new Map<string, SecretResource>();
  for (const c of credentials) {
    if (secrets.has(c.name)) continue;
    const owners = users.get(c.name) ?? [];
    const last = memo.secrets.get(c.name);
    secrets.set(
      c.name,
      last && last.source === c.source && last.secret === c.value && sameList(last.owners, owners)
        ? last
        : new SecretResource(c, owners),
    );
  }
  memo.secrets = secrets;
  return { ...resources, secret: [...secrets.values()] };
}

const madeOfIn = (ir: PolicyIR, options: CompileOptions, memo: ResourceMemo) => {
  let made = memo.ofPolicy.get(ir);
  if (!made) memo.ofPolicy.set(ir, (made = madeOf(ir, options)));
  return made;
};

function whole(policies: PolicyIR[], options: CompileOptions, memo: ResourceMemo): Resources {
  const byService = new Map<string, Users<PolicyIR>>();
  const endpointUsers = new Map<string, Users<MadeOfPolicy>>();
  for (const ir of policies) {
    const made = madeOfIn(ir, options, memo);
    for (const name of made.endpoints.keys()) add(endpointUsers, name, made);
    add(byService, made.service, ir);
  }
  const endpoints = new Map<string, EndpointsResource>();
  for (const name of endpointUsers.keys())
    endpoints.set(name, endpointsFor(name, endpointUsers.get(name)!, memo.endpoints.get(name)));
  memo.endpoints = endpoints;
  const routes = new Map<string, RoutesResource>();
  const scopes = new Map<string, ScopeResource>();
  for (const [name, users] of byService) {
    const route = routesFor(name, users, memo.routes.get(name), memo);
    routes.set(name, route);
    for (const host of route.hosts) scopes.set(host, scopeFor(host, route, memo.scopes.get(host)));
  }
  memo.routes = routes;
  memo.scopes = scopes;
  const listener: Resource<envoy.Listener> = {
    name: HTTP_LISTENER,
    owners: [],
    source: options.listen,
    value: () => httpListener(options.listen),
  };
  return remember(memo, policies, endpointUsers, byService, listener);
}

/**
 * The last call's resources with the policies at the positions that changed made again:
 * the same policies by key in the same order (what a sync that changed a few of 10,000
 * mostly is), so only their endpoints, Services and scopes are looked at.
 */
function inPlace(
  policies: PolicyIR[],
  options: CompileOptions,
  memo: ResourceMemo,
  last: NonNullable<ResourceMemo["last"]>,
): Resources {
  const { endpointUsers, byService } = last;
  const endpointsTouched = new Set<string>();
  const servicesTouched = new Set<string>();
  let changed = false;
  policies.forEach((ir, i) => {
    const was = last.policies[i]!;
    if (was === ir) return;
    changed = true;
    const before = memo.ofPolicy.get(was)!;
    const after = madeOfIn(ir, options, memo);
    for (const name of before.endpoints.keys()) (remove(endpointUsers, name, before), endpointsTouched.add(name));
    for (const name of after.endpoints.keys()) (insert(endpointUsers, name, after), endpointsTouched.add(name));
    remove(byService, before.service, was);
    insert(byService, after.service, ir);
    servicesTouched.add(before.service).add(after.service);
  });
  if (!changed) return last.resources;
  for (const name of endpointsTouched) {
    const users = endpointUsers.get(name);
    if (users) memo.endpoints.set(name, endpointsFor(name, users, memo.endpoints.get(name)));
    else memo.endpoints.delete(name);
  }
  for (const name of servicesTouched) {
    const before = memo.routes.get(name);
    const users = byService.get(name);
    const route = users && routesFor(name, users, before, memo);
    if (before && before !== route)
      for (const host of before.hosts) if (memo.scopes.get(host)?.route === before) memo.scopes.delete(host);
    if (!route) memo.routes.delete(name);
    else {
      memo.routes.set(name, route);
      for (const host of route.hosts) memo.scopes.set(host, scopeFor(host, route, memo.scopes.get(host)));
    }
  }
  return remember(memo, policies, endpointUsers, byService, last.resources.listener[0]!);
}

function remember(
  memo: ResourceMemo,
  policies: PolicyIR[],
  endpointUsers: Map<string, Users<MadeOfPolicy>>,
  byService: Map<string, Users<PolicyIR>>,
  listener: Resource<envoy.Listener>,
): Resources {
  const clusters: Resources["cluster"] = [];
  const listeners: Resources["listener"] = [listener];
  for (const ir of policies) {
    const made = memo.ofPolicy.get(ir)!;
    for (const cluster of made.clusters) clusters.push(cluster);
    for (const internal of made.listeners) listeners.push(internal);
  }
  const resources: Resources = {
    cluster: clusters,
    endpoint: [...memo.endpoints.values()],
    listener: listeners,
    scope: [...memo.scopes.values()],
    route: [...memo.routes.values()],
    secret: [],
  };
  memo.last = { policies, endpointUsers, byService, resources };
  return resources;
}

function endpointsFor(
  name: string,
  users: Users<MadeOfPolicy>,
  last: EndpointsResource | undefined,
): EndpointsResource {
  const first = Array.isArray(users) ? users[0]! : users;
  const backend = first.endpoints.get(name)!;
  const owners = Array.isArray(users) ? users.map((u) => u.key) : first.owners;
  return last && last.source === backend.endpoints && sameList(last.owners, owners)
    ? last
    : new EndpointsResource(name, backend, owners);
}

function routesFor(
  name: string,
  users: Users<PolicyIR>,
  last: RoutesResource | undefined,
  memo: ResourceMemo,
): RoutesResource {
  const irs = Array.isArray(users) ? users : [users];
  return last && sameList(last.policies, irs) ? last : new RoutesResource(name, irs, memo);
}

const scopeFor = (host: string, route: RoutesResource, last: ScopeResource | undefined) =>
  last?.route === route ? last : new ScopeResource(host, route);

/** The same policies by key, in the same order. */
const samePolicies = (a: PolicyIR[], b: PolicyIR[]) =>
  a.length === b.length && a.every((ir, i) => ir === b[i] || ir.key === b[i]!.key);

const sameList = <T>(a: readonly T[], b: readonly T[]) =>
  a === b || (a.length === b.length && a.every((x, i) => x === b[i]));

/** Adds a user after those there (callers go in key order). */
function add<T>(map: Map<string, Users<T>>, key: string, value: T): void {
  const had = map.get(key);
  if (had === undefined) map.set(key, value);
  else if (Array.isArray(had)) {
    if (had.at(-1) !== value) had.push(value);
  } else if (had !== value) map.set(key, [had, value]);
}

const keyOf = (user: PolicyIR | MadeOfPolicy) => user.key;

/** Adds a user where its key goes among those there. */
function insert<T extends PolicyIR | MadeOfPolicy>(map: Map<string, Users<T>>, key: string, value: T): void {
  const had = map.get(key);
  if (had === undefined) return void map.set(key, value);
  const list = Array.isArray(had) ? [...had, value] : [had, value];
  list.sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0));
  map.set(key, list);
}

function remove<T>(map: Map<string, Users<T>>, key: string, value: T): void {
  const had = map.get(key);
  if (had === value) map.delete(key);
  else if (Array.isArray(had)) {
    const rest = had.filter((v) => v !== value);
    map.set(key, rest.length === 1 ? rest[0]! : rest);
  }
}

/** What one policy's IR makes, and the names it sends to: made once per IR. */
type MadeOfPolicy = {
  key: string;
  owners: readonly string[];
  clusters: Resources["cluster"];
  /** The internal listeners of its mediated external backends (mediated.ts). */
  listeners: Resources["listener"];
  virtualHost: VirtualHostOf;
  /** The endpoints its Service members get over EDS, by name (a drained member's are its own, see drainedEndpointsName). */
  endpoints: Map<string, ServiceBackend>;
  /** Its target Service's route configuration. */
  service: string;
};

function madeOf(ir: PolicyIR, options: MemberOptions): MadeOfPolicy {
  const owners = [ir.key];
  const endpoints = new Map<string, ServiceBackend>();
  const aggregate = new AggregateResource(ir, owners);
  const clusters: Resources["cluster"] = [aggregate];
  const listeners: Resources["listener"] = [];
  const upstreams: Resources["cluster"] = [];
  clusterBackends(ir).forEach((backend, i) => {
    const eds = backend.kind === "Service" && backend.resolution === "EndpointSlices";
    // A backend's credential reaches Envoy over SDS only: inlined (files), it is left out.
    const credentialed = backend.kind === "External" && typeof backend.auth === "object";
    const member = new (eds || credentialed ? InlinedDiffersResource : MemberResource)(ir, owners, i, options);
    clusters.push(member);
    aggregate.members.push({ type: "cluster", name: member.name });
    if (eds && backend.kind === "Service") {
      const name = endpointsNameOf(backend);
      endpoints.set(name, backend);
      aggregate.members.push({ type: "endpoint", name });
    }
    if (backend.kind === "External" && isMediated(backend) && backend.auth !== "missing") {
      upstreams.push(new UpstreamResource(ir, owners, backend, member.name, options));
      listeners.push(new InternalListenerResource(ir, owners, backend, member.name));
    }
  });
  // The real hosts behind internal listeners go after the members (the aggregate requires those).
  clusters.push(...upstreams);
  const target = ir.backends[0] as ServiceBackend; // the primary: always the target Service
  return {
    key: ir.key,
    owners,
    clusters,
    listeners,
    virtualHost: new VirtualHostOf(ir),
    endpoints,
    service: routesName(target.namespace, target.name),
  };
}

// Classes rather than object literals with closures: at 10,000 policies there are some
// 80,000 of these, and half the allocations are half the garbage collection.

class AggregateResource implements Resource<envoy.Cluster> {
  readonly name: string;
  readonly owners: readonly string[];
  readonly source: PolicyIR;
  constructor(ir: PolicyIR, owners: readonly string[]) {
    this.name = aggregateName(ir.key);
    this.owners = owners;
    this.source = ir;
  }
  value(): envoy.Cluster {
    return aggregateCluster(this.source);
  }
  /**
   * Its member clusters, each followed by the endpoints it gets over EDS, named by the very
   * strings of those resources' names (set by madeOf): the xDS cache keeps this list per
   * policy as long as it serves the aggregate.
   */
  readonly members: Dependency[] = [];
  requires(): Dependency[] {
    return this.members;
  }
}

class MemberResource implements Resource<envoy.Cluster> {
  readonly name: string;
  readonly owners: readonly string[];
  readonly source: PolicyIR;
  protected readonly index: number;
  protected readonly options: MemberOptions;
  constructor(ir: PolicyIR, owners: readonly string[], index: number, options: MemberOptions) {
    this.name = backendClusterName(ir.key, index);
    this.owners = owners;
    this.source = ir;
    this.index = index;
    this.options = options;
  }
  value(): envoy.Cluster {
    return memberCluster(this.source, this.index, this.options);
  }
}

/**
 * A member whose inlined form differs: one that gets its endpoints over EDS holds them
 * itself; one whose credential comes over SDS has no endpoints (clusters.ts).
 */
class InlinedDiffersResource extends MemberResource {
  inlined(): envoy.Cluster {
    return memberCluster(this.source, this.index, this.options, true);
  }
}

/** The real host of a mediated external backend. */
class UpstreamResource implements Resource<envoy.Cluster> {
  readonly name: string;
  readonly owners: readonly string[];
  readonly source: PolicyIR;
  private readonly backend: ExternalBackend;
  private readonly member: string;
  private readonly options: MemberOptions;
  constructor(
    ir: PolicyIR,
    owners: readonly string[],
    backend: ExternalBackend,
    member: string,
    options: MemberOptions,
  ) {
    this.name = upstreamName(member);
    this.owners = owners;
    this.source = ir;
    this.backend = backend;
    this.member = member;
    this.options = options;
  }
  value(): envoy.Cluster {
    return upstreamCluster(
      this.source,
      this.backend,
      this.member,
      this.backend.tls ? upstreamTls(this.backend.sni, this.options.trustedCA) : undefined,
    );
  }
}

/** The internal listener of a mediated external backend; without xDS, without its credential. */
class InternalListenerResource implements Resource<envoy.Listener> {
  readonly name: string;
  readonly owners: readonly string[];
  readonly source: PolicyIR;
  private readonly backend: ExternalBackend;
  constructor(ir: PolicyIR, owners: readonly string[], backend: ExternalBackend, member: string) {
    this.name = member;
    this.owners = owners;
    this.source = ir;
    this.backend = backend;
  }
  value(): envoy.Listener {
    return internalListener(this.source, this.backend, this.name);
  }
  inlined(): envoy.Listener {
    return internalListener(this.source, this.backend, this.name, false);
  }
}

/** A credential, as an SDS generic secret. Its source is the Secret it is read from. */
class SecretResource implements Resource<envoy.Secret> {
  readonly name: string;
  readonly owners: readonly string[];
  readonly source: object;
  readonly secret: string;
  constructor(credential: Credential, owners: readonly string[]) {
    this.name = credential.name;
    this.owners = owners;
    this.source = credential.source;
    this.secret = credential.value;
  }
  value(): envoy.Secret {
    return { name: this.name, generic_secret: { secret: { inline_string: this.secret } } };
  }
}

class EndpointsResource implements Resource<envoy.ClusterLoadAssignment> {
  readonly name: string;
  readonly owners: readonly string[];
  readonly source: object;
  private readonly backend: ServiceBackend;
  constructor(name: string, backend: ServiceBackend, owners: readonly string[]) {
    this.name = name;
    this.owners = owners;
    this.source = backend.endpoints;
    this.backend = backend;
  }
  value(): envoy.ClusterLoadAssignment {
    return loadAssignment(this.backend);
  }
}

class VirtualHostOf implements VirtualHost {
  readonly owner: string;
  readonly source: PolicyIR;
  constructor(ir: PolicyIR) {
    this.owner = ir.key;
    this.source = ir;
  }
  value(): envoy.VirtualHost {
    return virtualHost(this.source);
  }
}

/** A Service's route configuration: its own source, made anew when its policies' IRs change. */
class RoutesResource implements Resource<envoy.RouteConfiguration> {
  readonly name: string;
  readonly owners: readonly string[];
  readonly policies: readonly PolicyIR[];
  readonly virtualHosts: VirtualHost[];
  readonly hosts: string[];
  constructor(name: string, policies: PolicyIR[], memo: ResourceMemo) {
    this.name = name;
    this.policies = policies;
    this.owners = policies.map((ir) => ir.key);
    this.virtualHosts = policies.map((ir) => memo.ofPolicy.get(ir)!.virtualHost);
    this.hosts = [...new Set(policies.flatMap(hostNames))];
  }
  get source(): object {
    return this;
  }
  value(): envoy.RouteConfiguration {
    return routeConfiguration(
      this.name,
      this.virtualHosts.map((v) => v.value()),
    );
  }
}

class ScopeResource implements Resource<envoy.ScopedRouteConfiguration> {
  readonly name: string;
  readonly route: RoutesResource;
  constructor(host: string, route: RoutesResource) {
    this.name = host;
    this.route = route;
  }
  get owners(): readonly string[] {
    return this.route.owners;
  }
  get source(): object {
    return this;
  }
  value(): envoy.ScopedRouteConfiguration {
    return routeScope(this.name, this.route.name);
  }
}
