// IR -> Envoy ClusterLoadAssignment: the ready endpoints of one Service port, as every
// cluster that sends to that port gets them over EDS; a drained backend's clusters get
// their own copy, every endpoint DRAINING (see drainedEndpointsName).
import type { ServiceBackend } from "../ir.ts";
import type * as envoy from "./api.gen.ts";
import { drainedEndpointsName, endpointsName } from "./types.ts";

/** The ClusterLoadAssignment a Service backend's cluster gets over EDS. */
export const endpointsNameOf = (backend: ServiceBackend) =>
  (backend.drained ? drainedEndpointsName : endpointsName)(backend.namespace, backend.name, backend.port);

export function loadAssignment(backend: ServiceBackend): envoy.ClusterLoadAssignment {
  return {
    cluster_name: endpointsNameOf(backend),
    endpoints: [{ lb_endpoints: lbEndpoints(backend) }],
  };
}

/**
 * A DRAINING host gets no new requests: they go to the next member of the aggregate, as they
 * would past an unhealthy one. Requests in flight on it finish.
 */
export const DRAINING = { health_status: "DRAINING" } as const satisfies envoy.LbEndpoint;

export const lbEndpoints = (backend: ServiceBackend): envoy.LbEndpoint[] =>
  backend.endpoints.map(({ address, port }): envoy.LbEndpoint => ({
    endpoint: { address: { socket_address: { address, port_value: port } } },
    ...(backend.drained ? DRAINING : {}),
  }));
