// IR -> Envoy listener: the one HTTP listener. Its routes (a virtual host per policy) come
// from the route configuration (routes.ts), so the listener is the same whatever the
// policies are, and a policy's change never touches it.
import { ADS, HTTP_LISTENER, ROUTE_CONFIG, TYPE } from "./types.ts";

export const CUSTOM_RESPONSE = "envoy.filters.http.custom_response";
const router = { name: "envoy.filters.http.router", typed_config: { "@type": TYPE.router } };

/** With `routes` (Envoy without an xDS server) the listener holds its route configuration. */
export function httpListener(listen: { address: string; port: number }, routes?: object): object {
  return {
    name: HTTP_LISTENER,
    address: { socket_address: { address: listen.address, port_value: listen.port } },
    filter_chains: [
      {
        filters: [
          {
            name: "envoy.filters.network.http_connection_manager",
            typed_config: {
              "@type": TYPE.hcm,
              stat_prefix: "fallback",
              ...(routes ? { route_config: routes } : { rds: { config_source: ADS, route_config_name: ROUTE_CONFIG } }),
              // The static responses: a virtual host that has one configures this filter for
              // itself; for the others it does nothing.
              http_filters: [{ name: CUSTOM_RESPONSE, typed_config: { "@type": TYPE.customResponse } }, router],
            },
          },
        ],
      },
    ],
  };
}
