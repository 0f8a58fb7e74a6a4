// IR -> Envoy listeners: the one HTTP listener with a virtual host per policy, and an
// internal listener per policy that answers its static degraded response.
import { envoyDuration as d } from "../duration.ts";
import type { PolicyIR, StaticBackend } from "../ir.ts";
import { HTTP_LISTENER, ROUTE_CONFIG, TYPE, aggregateName, staticListenerName } from "./types.ts";

// Envoy's own failure answers (no healthy upstream, connect failure, overflow, retries or
// time used up, connection lost): when a policy ends in a static response, these become it.
const UPSTREAM_FAILURE_FLAGS = ["UH", "UF", "UO", "URX", "UT", "UC"];

const router = { name: "envoy.filters.http.router", typed_config: { "@type": TYPE.router } };

export function httpListener(policies: PolicyIR[], listen: { address: string; port: number }): object {
  const mappers = policies.flatMap((p) => {
    const last = p.backends.at(-1);
    return last?.kind === "StaticResponse" ? [staticReplyMapper(p, last)] : [];
  });
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
              route_config: { name: ROUTE_CONFIG, virtual_hosts: policies.map(virtualHost) },
              http_filters: [router],
              ...(mappers.length ? { local_reply_config: { mappers } } : {}),
            },
          },
        ],
      },
    ],
  };
}

function virtualHost(policy: PolicyIR): object {
  const { retry } = policy;
  const rewriteHost = policy.backends.some((b) => b.kind === "External" && b.hostRewrite);
  return {
    name: policy.key,
    domains: policy.domains,
    routes: [
      {
        match: { prefix: "/" },
        route: {
          cluster: aggregateName(policy.key),
          timeout: d(policy.timeouts.requestMs),
          // Envoy rewrites Host to the chosen endpoint's hostname, which only external
          // backends carry, so in-cluster backends keep the client's Host.
          ...(rewriteHost ? { auto_host_rewrite: true } : {}),
          ...(retry.attempts > 0 ? { retry_policy: retryPolicy(policy) } : {}),
        },
      },
    ],
  };
}

function retryPolicy({ retry }: PolicyIR): object {
  return {
    retry_on: retry.retryOn.join(","),
    num_retries: retry.attempts,
    per_try_timeout: d(retry.perTryTimeoutMs),
    ...(retry.retriableStatusCodes.length ? { retriable_status_codes: retry.retriableStatusCodes } : {}),
    retry_back_off: { base_interval: d(retry.backoff.baseMs), max_interval: d(retry.backoff.maxMs) },
    ...(retry.fallbackOnRetry
      ? {
          // Each retry skips the backends (priorities of the aggregate) already tried, and
          // the hosts already tried within one.
          retry_priority: {
            name: "envoy.retry_priorities.previous_priorities",
            typed_config: { "@type": TYPE.previousPriorities, update_frequency: 1 },
          },
          retry_host_predicate: [{ name: "envoy.retry_host_predicates.previous_hosts", typed_config: { "@type": TYPE.previousHosts } }],
          host_selection_retry_max_attempts: 3,
        }
      : {}),
  };
}

const responseHeaders = (backend: StaticBackend) =>
  backend.headers.map(([key, value]) => ({ header: { key, value }, append_action: "OVERWRITE_IF_EXISTS_OR_ADD" }));

function staticReplyMapper(policy: PolicyIR, backend: StaticBackend): object {
  return {
    filter: {
      and_filter: {
        filters: [
          {
            or_filter: {
              filters: policy.domains.map((domain) => ({
                header_filter: { header: { name: ":authority", string_match: { exact: domain } } },
              })),
            },
          },
          { response_flag_filter: { flags: UPSTREAM_FAILURE_FLAGS } },
        ],
      },
    },
    status_code: backend.status,
    body: { inline_string: backend.body },
    ...(backend.headers.length ? { headers_to_add: responseHeaders(backend) } : {}),
  };
}

export function staticListener(policy: PolicyIR, backend: StaticBackend): object {
  return {
    name: staticListenerName(policy.key),
    internal_listener: {},
    filter_chains: [
      {
        filters: [
          {
            name: "envoy.filters.network.http_connection_manager",
            typed_config: {
              "@type": TYPE.hcm,
              stat_prefix: "fallback_static",
              route_config: {
                name: staticListenerName(policy.key),
                virtual_hosts: [
                  {
                    name: "static",
                    domains: ["*"],
                    routes: [{ match: { prefix: "/" }, direct_response: { status: backend.status, body: { inline_string: backend.body } } }],
                    ...(backend.headers.length ? { response_headers_to_add: responseHeaders(backend) } : {}),
                  },
                ],
              },
              http_filters: [router],
            },
          },
        ],
      },
    ],
  };
}
