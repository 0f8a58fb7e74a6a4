// An external backend the request must be changed for — the client's credentials taken
// off, the backend's own put on, its path prefix and model rewritten — goes through an
// internal listener of its own:
//
//   aggregate -> member cluster ns/p/fallback-N (outlier detection, circuit breakers)
//     -> internal listener ns/p/fallback-N: its own HTTP filters for this backend
//     -> cluster ns/p/fallback-N/upstream: the real host, over TLS
//
// Why not filters on the member cluster: behind an aggregate cluster Envoy builds the
// upstream filter chain from the route's cluster (the aggregate), so a member's own upstream
// HTTP filters are never run (envoyproxy/envoy#29318). The member stays what the aggregate
// picks, ejects and counts: the internal listener answers it with the backend's own status
// (a 503 when the host cannot be reached), so outlier detection sees what it always saw;
// with ejectOnRateLimit a 429 is answered as a 503 too (rateLimitedAsUnavailable).
import { envoyDuration as d } from "../duration.ts";
import type { ExternalBackend, PolicyIR } from "../ir.ts";
import type * as envoy from "./api.gen.ts";
import { ADS, TYPE } from "./types.ts";

/** Whether requests to this backend go through an internal listener (anything to change, and by default the client's credentials to take off). */
export const isMediated = (backend: ExternalBackend) =>
  backend.auth !== undefined ||
  backend.rewrite !== undefined ||
  !backend.forwardClientCredentials ||
  backend.ejectOnRateLimit === true;

export const upstreamName = (member: string) => `${member}/upstream`;

/** The headers a client's credentials for the in-cluster Service travel in. */
const CLIENT_CREDENTIALS = ["authorization", "proxy-authorization", "cookie"];

/** The member's endpoint: the internal listener of the same name. */
export function internalEndpoint(member: string): envoy.Endpoint {
  return { address: { envoy_internal_address: { server_listener_name: member } } };
}

/**
 * The internal listener of member `member`. `withCredential` false (Envoy without an xDS
 * server, which has no SDS to get the credential from) leaves the credential out: the
 * backend then refuses, and the policy moves on.
 */
export function internalListener(
  policy: PolicyIR,
  backend: ExternalBackend,
  member: string,
  withCredential = true,
): envoy.Listener {
  const filters: envoy.HttpFilter[] = [];
  if (backend.ejectOnRateLimit) filters.push(rateLimitedAsUnavailable());
  // First of the request's changes, so that nothing after it (the credential going in) is taken off again.
  if (!backend.forwardClientCredentials) {
    filters.push({
      name: "envoy.filters.http.header_mutation",
      typed_config: {
        "@type": TYPE.headerMutation,
        mutations: { request_mutations: CLIENT_CREDENTIALS.map((remove) => ({ remove })) },
      },
    });
  }
  const auth = backend.auth;
  if (auth && auth !== "missing" && withCredential) {
    filters.push({
      name: "envoy.filters.http.credential_injector",
      typed_config: {
        "@type": TYPE.credentialInjector,
        overwrite: true,
        credential: {
          name: "envoy.http.injected_credentials.generic",
          typed_config: {
            "@type": TYPE.genericCredential,
            credential: { name: auth.secret, sds_config: ADS },
            header: auth.header,
            header_value_prefix: auth.prefix,
          },
        },
      },
    });
  }
  if (backend.rewrite?.model) {
    // Envoy's transform filter merges the new model into a JSON body (a body that is not
    // JSON passes untouched); it buffers the request only, so answers still stream.
    filters.push({
      name: "envoy.filters.http.transform",
      typed_config: {
        "@type": TYPE.transform,
        request_transformation: {
          body_transformation: { body_format: { json_format: { model: backend.rewrite.model } }, action: "MERGE" },
        },
      },
    });
  }
  filters.push({ name: "envoy.filters.http.router", typed_config: { "@type": TYPE.router } });
  const prefix = backend.rewrite?.pathPrefix;
  return {
    name: member,
    internal_listener: {},
    filter_chains: [
      {
        filters: [
          {
            name: "envoy.filters.network.http_connection_manager",
            typed_config: {
              "@type": TYPE.hcm,
              stat_prefix: "fallback_external",
              route_config: {
                name: member,
                virtual_hosts: [
                  {
                    name: member,
                    domains: ["*"],
                    routes: [
                      {
                        match: { prefix: "/" },
                        route: {
                          cluster: upstreamName(member),
                          // The outer route's timeouts and retries govern; this hop must not cut a long answer short.
                          timeout: "0s",
                          ...(backend.hostRewrite
                            ? ({ host_rewrite_literal: backend.host } satisfies envoy.RouteAction)
                            : {}),
                          ...(prefix
                            ? ({
                                regex_rewrite: {
                                  pattern: { regex: `^${escapeRegex(prefix.from.replace(/\/$/, ""))}(/.*)?$` },
                                  substitution: `${prefix.to.replace(/\/$/, "")}\\1`,
                                },
                              } satisfies envoy.RouteAction)
                            : {}),
                        },
                      },
                    ],
                  },
                ],
              },
              http_filters: filters,
            },
          },
        ],
      },
    ],
  };
}

/**
 * Envoy's Lua filter, running this on the backend's answers: a 429 becomes a 503, with the
 * backend's body and headers (its Retry-After) as they were.
 */
const RATE_LIMITED_AS_UNAVAILABLE = `function envoy_on_response(response)
  local headers = response:headers()
  if headers:get(":status") == "429" then
    headers:replace(":status", "503")
    headers:replace("x-fallback-rate-limited", "429")
  end
end
`;

/**
 * The backend's 429 answered as a 503. Outlier detection in Envoy 1.40 counts only 5xx and
 * connection failures (the monitor that could count a 429, consecutive_errors, is not in its
 * build), so to eject a rate-limited provider the member must see a failure: this hop turns
 * the 429 into one. The outer route then retries it on the next backend as a gateway error,
 * and it ejects the member after consecutive5xx of them like any other 5xx. Why Lua: the
 * one status change Envoy's other filters can make replaces the whole answer
 * (custom_response), and the Retry-After in it would be lost.
 */
function rateLimitedAsUnavailable(): envoy.HttpFilter {
  return {
    name: "envoy.filters.http.lua",
    typed_config: {
      "@type": TYPE.lua,
      default_source_code: { inline_string: RATE_LIMITED_AS_UNAVAILABLE },
    },
  };
}

/** The real host behind the internal listener: resolved by DNS, over TLS when the backend is. */
export function upstreamCluster(
  policy: PolicyIR,
  backend: ExternalBackend,
  member: string,
  tls: envoy.TransportSocket | undefined,
): envoy.Cluster {
  const name = upstreamName(member);
  const endpoint: envoy.Endpoint = { address: { socket_address: { address: backend.host, port_value: backend.port } } };
  return {
    name,
    connect_timeout: d(policy.timeouts.connectMs),
    type: "STRICT_DNS",
    dns_lookup_family: "V4_PREFERRED",
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint }] }] },
    ...(tls ? ({ transport_socket: tls } satisfies envoy.Cluster) : {}),
  };
}

const escapeRegex = (text: string) => text.replace(/[\\^$.*+?()[\]{}|]/g, "\\$&");
