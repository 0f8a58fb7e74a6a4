// IR -> Envoy listener: the one HTTP listener. It picks a request's routes by its Host: the
// host name (without the port) is the key of a scope (routes.ts), which names the route
// configuration of the Service it belongs to. So the listener is the same whatever the
// policies are, and a policy's change touches its own Service's routes only.
import type * as envoy from "./api.gen.ts";
import { ADS, HTTP_LISTENER, ROUTE_SCOPES, TYPE } from "./types.ts";

export const CUSTOM_RESPONSE = "envoy.filters.http.custom_response";
/**
 * Scoped routes: one route configuration per Service instead of one for every policy. Envoy
 * rebuilds a route configuration whole when it changes, so one holding every policy made each
 * change slow to apply (docs/benchmarks.md). The key is the Host's part before a colon.
 */
const SCOPED_ROUTES: envoy.ScopedRoutes = {
  name: ROUTE_SCOPES,
  scope_key_builder: {
    fragments: [{ header_value_extractor: { name: ":authority", element_separator: ":", index: 0 } }],
  },
  rds_config_source: ADS,
  scoped_rds: { scoped_rds_config_source: ADS },
};

const router: envoy.HttpFilter = { name: "envoy.filters.http.router", typed_config: { "@type": TYPE.router } };

/** With `routes` (Envoy without an xDS server) the listener holds its route configuration. */
export function httpListener(
  listen: { address: string; port: number },
  routes?: envoy.RouteConfiguration,
): envoy.Listener {
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
              ...(routes
                ? ({ route_config: routes } satisfies envoy.HttpConnectionManager)
                : ({ scoped_routes: SCOPED_ROUTES } satisfies envoy.HttpConnectionManager)),
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
