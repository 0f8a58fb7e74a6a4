// The resources as Envoy takes them without an xDS server (a bootstrap's static_resources,
// or the files it watches): what it would fetch over ADS is inlined. Each cluster that gets
// its endpoints over EDS holds them itself, and the listener holds the route configuration.
import { httpListener } from "./listeners.ts";
import type { Part, Resource, Resources } from "./types.ts";

export type InlinedConfig = {
  /** The clusters: take inlinedValue() of each. */
  clusters: Resource[];
  /** The listener, holding the route configuration with these virtual hosts. */
  listener(virtualHosts: object[]): object;
  /** The route configuration's virtual hosts, one per policy. */
  virtualHosts: Part[];
};

export function inlinedConfig(resources: Resources, listen: { address: string; port: number }): InlinedConfig {
  const routes = resources.route[0];
  return {
    clusters: resources.cluster,
    listener: (virtualHosts) => httpListener(listen, { ...routes?.value(), virtual_hosts: virtualHosts }),
    virtualHosts: routes?.items?.parts ?? [],
  };
}

/** A resource's value as Envoy takes it without an xDS server. */
export const inlinedValue = (resource: Resource): object => (resource.inlined ? resource.inlined() : resource.value());
