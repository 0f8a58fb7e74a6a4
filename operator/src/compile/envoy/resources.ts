// The programmed policies' IRs -> Envoy resources by type and name: for each policy its
// aggregate and member clusters; the endpoints of each Service port any of them sends to;
// for each governed Service a route configuration (a virtual host per policy on it) and the
// scopes that lead its host names there; and the one listener.
//
// What is made of an IR is kept (ResourceMemo, owned by the Compiler): an unchanged policy
// hands out the very resource objects of the last compile, which is how a sink tells at a
// glance what changed, and a sync at 10,000 policies allocates almost nothing for them.
import type { PolicyIR, ServiceBackend } from "../ir.ts";
import type { CompileOptions } from "../snapshot.ts";
import { aggregateCluster, clusterBackends, memberCluster } from "./clusters.ts";
import { loadAssignment } from "./endpoints.ts";
import { httpListener } from "./listeners.ts";
import { hostNames, routeConfiguration, routeScope, virtualHost } from "./routes.ts";
import {
  HTTP_LISTENER,
  aggregateName,
  backendClusterName,
  endpointsName,
  routesName,
  type Dependency,
  type Resource,
  type Resources,
  type VirtualHost,
} from "./types.ts";

/** What earlier compiles made, for the next to hand out again. */
export class ResourceMemo {
  readonly ofPolicy = new WeakMap<PolicyIR, { clusters: Resource[]; virtualHost: VirtualHostOf }>();
  endpoints = new Map<string, EndpointsResource>();
  routes = new Map<string, RoutesResource>();
  scopes = new Map<string, ScopeResource>();
}

/**
 * `policies` sorted by key. Each list follows their order: a policy's clusters as aggregate,
 * primary, fallbacks; endpoints, routes and scopes as the first policy to need them has them.
 */
export function envoyResources(policies: PolicyIR[], options: CompileOptions, memo = new ResourceMemo()): Resources {
  const clusters: Resource[] = [];
  const byService = new Map<string, PolicyIR[]>();
  const endpointUsers = new Map<string, { backend: ServiceBackend; owners: string[] }>();
  for (const ir of policies) {
    let made = memo.ofPolicy.get(ir);
    if (!made) memo.ofPolicy.set(ir, (made = { clusters: policyClusters(ir, options.trustedCA), virtualHost: new VirtualHostOf(ir) }));
    for (const cluster of made.clusters) clusters.push(cluster);
    for (const backend of clusterBackends(ir)) {
      if (backend.kind !== "Service" || backend.resolution !== "EndpointSlices") continue;
      const name = endpointsName(backend.namespace, backend.name, backend.port);
      const users = endpointUsers.get(name);
      if (!users) endpointUsers.set(name, { backend, owners: made.clusters[0]!.owners as string[] });
      else if (users.owners.at(-1) !== ir.key) users.owners = [...users.owners, ir.key];
    }
    const target = ir.backends[0] as ServiceBackend; // the primary: always the target Service
    const service = routesName(target.namespace, target.name);
    const onService = byService.get(service);
    if (onService) onService.push(ir);
    else byService.set(service, [ir]);
  }

  const endpoints = new Map<string, EndpointsResource>();
  for (const [name, { backend, owners }] of endpointUsers) {
    const last = memo.endpoints.get(name);
    endpoints.set(name, last && last.source === backend.endpoints && sameList(last.owners, owners) ? last : new EndpointsResource(name, backend, owners));
  }
  memo.endpoints = endpoints;

  const routes = new Map<string, RoutesResource>();
  const scopes = new Map<string, ScopeResource>();
  for (const [name, irs] of byService) {
    const last = memo.routes.get(name);
    const route = last && sameList(last.policies, irs) ? last : new RoutesResource(name, irs, memo);
    routes.set(name, route);
    for (const host of route.hosts) {
      const lastScope = memo.scopes.get(host);
      scopes.set(host, lastScope?.route === route ? lastScope : new ScopeResource(host, route));
    }
  }
  memo.routes = routes;
  memo.scopes = scopes;

  return {
    cluster: clusters,
    endpoint: [...endpoints.values()],
    listener: [{ name: HTTP_LISTENER, owners: [], source: options.listen, value: () => httpListener(options.listen) }],
    scope: [...scopes.values()],
    route: [...routes.values()],
    secret: [],
  };
}

const sameList = <T>(a: readonly T[], b: readonly T[]) => a === b || (a.length === b.length && a.every((x, i) => x === b[i]));

function policyClusters(ir: PolicyIR, trustedCA: string): Resource[] {
  const owners = [ir.key];
  return [
    new AggregateResource(ir, owners),
    ...clusterBackends(ir).map((backend, i) => {
      const eds = backend.kind === "Service" && backend.resolution === "EndpointSlices";
      return new (eds ? EdsMemberResource : MemberResource)(ir, owners, i, trustedCA);
    }),
  ];
}

// Classes rather than object literals with closures: at 10,000 policies there are some
// 80,000 of these, and half the allocations are half the garbage collection.

class AggregateResource implements Resource {
  readonly name: string;
  readonly owners: readonly string[];
  readonly source: PolicyIR;
  constructor(ir: PolicyIR, owners: readonly string[]) {
    this.name = aggregateName(ir.key);
    this.owners = owners;
    this.source = ir;
  }
  value() {
    return aggregateCluster(this.source);
  }
  requires(): Dependency[] {
    return clusterBackends(this.source).flatMap((backend, i): Dependency[] => {
      const member: Dependency = { type: "cluster", name: backendClusterName(this.source.key, i) };
      if (backend.kind !== "Service" || backend.resolution !== "EndpointSlices") return [member];
      return [member, { type: "endpoint", name: endpointsName(backend.namespace, backend.name, backend.port) }];
    });
  }
}

class MemberResource implements Resource {
  readonly name: string;
  readonly owners: readonly string[];
  readonly source: PolicyIR;
  protected readonly index: number;
  protected readonly trustedCA: string;
  constructor(ir: PolicyIR, owners: readonly string[], index: number, trustedCA: string) {
    this.name = backendClusterName(ir.key, index);
    this.owners = owners;
    this.source = ir;
    this.index = index;
    this.trustedCA = trustedCA;
  }
  value() {
    return memberCluster(this.source, this.index, this.trustedCA);
  }
}

/** A member that gets its endpoints over EDS, or holds them itself when inlined. */
class EdsMemberResource extends MemberResource {
  inlined() {
    return memberCluster(this.source, this.index, this.trustedCA, true);
  }
}

class EndpointsResource implements Resource {
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
  value() {
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
  value() {
    return virtualHost(this.source);
  }
}

/** A Service's route configuration: its own source, made anew when its policies' IRs change. */
class RoutesResource implements Resource {
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
  value() {
    return routeConfiguration(this.name, this.virtualHosts.map((v) => v.value()));
  }
}

class ScopeResource implements Resource {
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
  value() {
    return routeScope(this.name, this.route.name);
  }
}
