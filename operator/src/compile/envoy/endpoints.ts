// IR -> Envoy ClusterLoadAssignment: the ready endpoints of one Service port, as every
// cluster that sends to that port gets them over EDS.
import type { ServiceBackend } from "../ir.ts";
import { endpointsName } from "./types.ts";

export function loadAssignment(backend: ServiceBackend): object {
  return {
    cluster_name: endpointsName(backend.namespace, backend.name, backend.port),
    endpoints: [{ lb_endpoints: lbEndpoints(backend) }],
  };
}

export const lbEndpoints = (backend: ServiceBackend) =>
  backend.endpoints.map(({ address, port }) => ({ endpoint: { address: { socket_address: { address, port_value: port } } } }));
