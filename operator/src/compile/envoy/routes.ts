// IR -> Envoy routes: a route configuration per governed Service, with a virtual host per
// policy on it (one per port) that sends the traffic to the policy's aggregate cluster,
// retries as it says and answers with its static response when every backend failed; and
// the scopes that lead a request's Host to it.
import { envoyDuration as d } from "../duration.ts";
import type { PolicyIR, RetryIR, StaticBackend } from "../ir.ts";
import type * as envoy from "./api.gen.ts";
import { CUSTOM_RESPONSE } from "./listeners.ts";
import { TYPE, aggregateName } from "./types.ts";

export function routeConfiguration(name: string, virtualHosts: envoy.VirtualHost[]): envoy.RouteConfiguration {
  // A route to a cluster Envoy does not have yet answers 503 until the cluster arrives;
  // checking would reject the whole configuration instead.
  return { name, validate_clusters: false, virtual_hosts: virtualHosts };
}

/** The scope that sends requests for `host` (a name without port) to a route configuration. */
export function routeScope(host: string, routeConfigurationName: string): envoy.ScopedRouteConfiguration {
  return { name: host, route_configuration_name: routeConfigurationName, key: { fragments: [{ string_key: host }] } };
}

/** The host names (without port) a policy's virtual host answers to: its scopes' keys. */
export const hostNames = (policy: PolicyIR) => [...new Set(policy.domains.map((d) => d.replace(/:\d+$/, "")))];

const staticResponseOf = (policy: PolicyIR) => {
  const last = policy.backends.at(-1);
  return last?.kind === "StaticResponse" ? last : undefined;
};

export function virtualHost(policy: PolicyIR): envoy.VirtualHost {
  const { retry } = policy;
  const rewriteHost = policy.backends.some((b) => b.kind === "External" && b.hostRewrite);
  const staticResponse = staticResponseOf(policy);
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
          ...(rewriteHost ? ({ auto_host_rewrite: true } satisfies envoy.RouteAction) : {}),
          ...(retry.attempts > 0 ? ({ retry_policy: retryPolicy(policy) } satisfies envoy.RouteAction) : {}),
        },
      },
    ],
    ...(staticResponse
      ? ({
          typed_per_filter_config: {
            [CUSTOM_RESPONSE]: {
              "@type": TYPE.customResponse,
              custom_response_matcher: staticMatcher(retry, staticResponse),
            },
          },
        } satisfies envoy.VirtualHost)
      : {}),
  };
}
function retryPolicy({ retry, timeouts }: PolicyIR): envoy.ConfigRoute_RetryPolicy {
  // A retry that goes back to the backend that answered (a 429, or a 503) waits as long as
  // its Retry-After (or X-RateLimit-Reset) asks, up to the request's own timeout; a retry
  // that moves on to the next backend (fallbackOnRetry) has no reason to wait.
  const waitForReset = !retry.fallbackOnRetry;
  return {
    retry_on: retry.retryOn.join(","),
    num_retries: retry.attempts,
    per_try_timeout: d(retry.perTryTimeoutMs),
    ...(retry.retriableStatusCodes.length
      ? ({ retriable_status_codes: retry.retriableStatusCodes } satisfies envoy.ConfigRoute_RetryPolicy)
      : {}),
    retry_back_off: { base_interval: d(retry.backoff.baseMs), max_interval: d(retry.backoff.maxMs) },
    ...(waitForReset
      ? ({
          rate_limited_retry_back_off: {
            reset_headers: [
              { name: "retry-after", format: "SECONDS" },
              { name: "x-ratelimit-reset", format: "UNIX_TIMESTAMP" },
            ],
            // A longer reset than this is ignored (Envoy then backs off as usual).
            ...(timeouts.requestMs > 0 ? { max_interval: d(timeouts.requestMs) } : {}),
          },
        } satisfies envoy.ConfigRoute_RetryPolicy)
      : {}),
    ...(retry.fallbackOnRetry
      ? ({
          // Each retry skips the backends (priorities of the aggregate) already tried, and
          // the hosts already tried within one.
          retry_priority: {
            name: "envoy.retry_priorities.previous_priorities",
            typed_config: { "@type": TYPE.previousPriorities, update_frequency: 1 },
          },
          retry_host_predicate: [
            { name: "envoy.retry_host_predicates.previous_hosts", typed_config: { "@type": TYPE.previousHosts } },
          ],
          host_selection_retry_max_attempts: 3,
        } satisfies envoy.ConfigRoute_RetryPolicy)
      : {}),
  };
}

/**
 * The static response replaces the final answer whenever the request failed: any failure
 * answer of Envoy's own (no healthy backend, connection failure, timeout, overflow), and
 * any backend answer with a status the retry policy counts as failure, as it stands once
 * retries are used up. So it answers however the backends before it fail.
 *
 * One matcher, one action: the ConfigMap is small (1 MiB for every policy), so the
 * conditions are or-ed rather than each given a copy of the response.
 */
function staticMatcher(retry: RetryIR, backend: StaticBackend): envoy.Matcher {
  const action: envoy.XdsCore_TypedExtensionConfig = {
    name: "static-response",
    typed_config: {
      "@type": TYPE.localResponsePolicy,
      status_code: backend.status,
      body: { inline_string: backend.body },
      ...(backend.headers.length
        ? ({
            // Envoy reads a header value as a format string (%START_TIME% and the like): a
            // literal % is written %%, else the value is rejected, or worse, substituted.
            response_headers_to_add: backend.headers.map(([key, value]) => ({
              header: { key, value: value.replaceAll("%", "%%") },
              append_action: "OVERWRITE_IF_EXISTS_OR_ADD",
            })),
          } satisfies envoy.LocalResponsePolicy)
        : {}),
    },
  };
  type Input = typeof TYPE.statusInput | typeof TYPE.statusClassInput | typeof TYPE.localReplyInput;
  const is = (
    name: string,
    type: Input,
    value_match: envoy.XdsTypeMatcher_StringMatcher,
  ): envoy.Matcher_MatcherList_Predicate => ({
    single_predicate: { input: { name, typed_config: { "@type": type } }, value_match },
  });
  const statusClass5xx = is("status-class", TYPE.statusClassInput, { exact: "5xx" });
  const localFailure: envoy.Matcher_MatcherList_Predicate = {
    and_matcher: { predicate: [is("local-reply", TYPE.localReplyInput, { exact: "true" }), statusClass5xx] },
  };

  const statuses = failureStatuses(retry);
  const codes = statuses.filter((s) => s !== "5xx");
  const backendFailure: envoy.Matcher_MatcherList_Predicate[] = [
    ...(statuses.includes("5xx") ? [statusClass5xx] : []),
    // RE2 matches the whole status: "502|503|504" is exactly those three.
    ...(codes.length
      ? [
          is(
            "status",
            TYPE.statusInput,
            codes.length === 1 ? { exact: codes[0] } : { safe_regex: { google_re2: {}, regex: codes.join("|") } },
          ),
        ]
      : []),
  ];
  const predicate: envoy.Matcher_MatcherList_Predicate = backendFailure.length
    ? { or_matcher: { predicate: [localFailure, ...backendFailure] } }
    : localFailure;
  return { matcher_list: { matchers: [{ predicate, on_match: { action } }] } };
}

/** Statuses ("5xx" for the whole class) that the policy's retryOn treats as a failure. */
function failureStatuses(retry: RetryIR): string[] {
  const statuses = new Set<string>();
  for (const on of retry.retryOn) {
    if (on === "5xx") statuses.add("5xx");
    if (on === "gateway-error") ["502", "503", "504"].forEach((c) => statuses.add(c));
    if (on === "retriable-4xx") statuses.add("409");
    if (on === "envoy-ratelimited") statuses.add("429");
    if (on === "retriable-status-codes") retry.retriableStatusCodes.forEach((c) => statuses.add(String(c)));
  }
  // A 5xx class match already covers single 5xx codes.
  if (statuses.has("5xx")) for (const s of [...statuses]) if (/^5\d\d$/.test(s)) statuses.delete(s);
  return [...statuses].sort();
}
