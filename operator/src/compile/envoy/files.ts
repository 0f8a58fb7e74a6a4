// The resources as Envoy takes them without an xDS server (a bootstrap's static_resources,
// or the files it watches): what it would fetch over ADS is inlined. Each cluster that gets
// its endpoints over EDS holds them itself, and the listener holds one route configuration
// with every virtual host (files are rewritten whole anyway: scopes would buy nothing).
import type * as envoy from "./api.gen.ts";
import { httpListener } from "./listeners.ts";
import { routeConfiguration } from "./routes.ts";
import { HTTP_LISTENER, ROUTE_CONFIG, type Resource, type Resources, type VirtualHost } from "./types.ts";

export type InlinedConfig = {
  /** The clusters: take inlinedValue() of each. */
  clusters: Resources["cluster"];
  /** The listener, holding the route configuration with these virtual hosts. */
  listener(virtualHosts: envoy.VirtualHost[]): envoy.Listener;
  /** Every policy's virtual host. */
  virtualHosts: VirtualHost[];
  /** The internal listeners of external backends (mediated.ts): take inlinedValue() of each. */
  internalListeners: Resources["listener"];
};

export function inlinedConfig(resources: Resources, listen: { address: string; port: number }): InlinedConfig {
  return {
    clusters: resources.cluster,
    listener: (virtualHosts) => httpListener(listen, routeConfiguration(ROUTE_CONFIG, virtualHosts)),
    virtualHosts: resources.route.flatMap((r) => r.virtualHosts ?? []),
    internalListeners: resources.listener.filter((l) => l.name !== HTTP_LISTENER),
  };
}

/** A resource's value as Envoy takes it without an xDS server. */
export const inlinedValue = <Value extends object>(resource: Resource<Value>): Value =>
  resource.inlined ? resource.inlined() : resource.value();
