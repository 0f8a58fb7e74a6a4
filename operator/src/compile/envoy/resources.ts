// The programmed policies' IRs -> Envoy resources by type and name: for each policy its
// aggregate and member clusters and its virtual host; the endpoints of each Service port
// any of them sends to; the one listener and the one route configuration.
import type { PolicyIR, ServiceBackend } from "../ir.ts";
import type { CompileOptions } from "../snapshot.ts";
import { aggregateCluster, clusterBackends, memberCluster } from "./clusters.ts";
import { loadAssignment } from "./endpoints.ts";
import { httpListener } from "./listeners.ts";
import { routeConfiguration, virtualHost } from "./routes.ts";
import { HTTP_LISTENER, ROUTE_CONFIG, aggregateName, backendClusterName, endpointsName, type Dependency, type Part, type Resource, type Resources } from "./types.ts";

/**
 * `policies` sorted by key. Each list follows their order: a policy's clusters as aggregate,
 * primary, fallbacks; endpoints as the first policy to send to them has them.
 */
export function envoyResources(policies: PolicyIR[], options: CompileOptions): Resources {
  const clusters: Resource[] = [];
  const endpoints = new Map<string, EndpointsResource>();
  for (const ir of policies) {
    const owners = [ir.key];
    clusters.push(new AggregateResource(ir, owners));
    clusterBackends(ir).forEach((backend, i) => {
      const eds = backend.kind === "Service" && backend.resolution === "EndpointSlices";
      clusters.push(new (eds ? EdsMemberResource : MemberResource)(ir, owners, i, options.trustedCA));
      if (!eds) return;
      const name = endpointsName(backend.namespace, backend.name, backend.port);
      const shared = endpoints.get(name);
      if (!shared) endpoints.set(name, new EndpointsResource(name, backend, ir.key));
      else if (shared.owners.at(-1) !== ir.key) shared.owners.push(ir.key);
    });
  }
  return {
    cluster: clusters,
    endpoint: [...endpoints.values()],
    listener: [{ name: HTTP_LISTENER, owners: [], source: options.listen, value: () => httpListener(options.listen) }],
    route: [{ name: ROUTE_CONFIG, owners: [], source: ROUTE_HEAD, value: routeConfiguration, items: { key: "virtual_hosts", parts: policies.map((ir) => new VirtualHostPart(ir)) } }],
    secret: [],
  };
}

const ROUTE_HEAD = {};

// Classes rather than object literals with closures: at 10,000 policies there are some
// 80,000 of these per compile, and half the allocations are half the garbage collection.

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
  readonly owners: string[];
  readonly source: object;
  private readonly backend: ServiceBackend;
  constructor(name: string, backend: ServiceBackend, firstOwner: string) {
    this.name = name;
    this.owners = [firstOwner];
    this.source = backend.endpoints;
    this.backend = backend;
  }
  value() {
    return loadAssignment(this.backend);
  }
}

class VirtualHostPart implements Part {
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
