// A policy in plain words, from its IR: the order of the backends; what a refused
// connection, a 5xx, a 429 or a slow backend does to a request; how long a client waits at
// worst before a fallback (or the static answer) answers; when the static answer is served;
// what outlier detection and health checks take out, and for how long. Every number comes
// from the policy, and every "what happens" from the simulator (simulate.ts), so that the
// explanation and simulate_failure never disagree.
import type { PolicyIR } from "../compile/ir.ts";
import type { BackendView, PolicyView } from "./model.ts";
import { isFailureStatus, simulate, type Outcome, type Simulation } from "./simulate.ts";
import { count, list, ms, ordinal } from "./words.ts";

export type Explanation = {
  policy: string;
  target: string;
  order: {
    position: number;
    name: string;
    kind: BackendView["kind"];
    description: string;
    drained: boolean;
    assumption?: string;
  }[];
  sections: { topic: string; text: string }[];
  numbers: {
    triesPerRequest: number;
    perTryTimeoutMs: number | null;
    requestTimeoutMs: number | null;
    connectTimeoutMs: number;
    /** Upper bound of the back-off before each retry, in order. */
    backoffMaxMs: number[];
    /** For each fallback, how long the client waits at worst before it answers. */
    worstCase: {
      backend: string;
      whenEarlierSlowMs: number | null;
      whenEarlierRefuseMs: number | null;
      note?: string;
    }[];
    staticAnswer: { whenAllSlowMs: number | null; whenAllRefuseMs: number | null } | null;
    ejection: {
      consecutive5xx: number;
      consecutiveGatewayErrors: number;
      consecutiveLocalOriginFailures: number | null;
      firstEjectionMs: number;
      maxEjectionMs: number;
      intervalMs: number;
      backWithinMs: number;
      maxEjectionPercent: number;
    };
  };
};

export function explain(view: PolicyView): Explanation {
  const { ir } = view;
  const { retry, ejection: e, timeouts } = ir;
  const members = view.backends.filter((b) => b.kind !== "StaticResponse");
  const active = members.filter((b) => !b.drained && b.hosts !== 0);
  const staticAnswer = view.backends.find((b) => b.kind === "StaticResponse");
  const [primary] = members as [BackendView, ...BackendView[]];
  const tries = retry.attempts + 1;
  const perTryMs = retry.attempts > 0 && retry.perTryTimeoutMs > 0 ? retry.perTryTimeoutMs : null;
  const sections: { topic: string; text: string }[] = [];
  const say = (topic: string, ...sentences: (string | false | undefined)[]) =>
    sections.push({ topic, text: sentences.filter(Boolean).join(" ") });

  // ---- order ----
  const state = (b: BackendView) => [b.state, b.drained ? "drained" : undefined].filter(Boolean).join(", ");
  const chain = members
    .slice(1)
    .map((b, i) => `${ordinal(i + 1)} ${b.name} (${b.description}${b.drained ? ", drained" : ""})`);
  say(
    "order",
    `Requests to ${primary.description.replace(/, .*$/, "")} go to it first${state(primary) ? ` (${state(primary)})` : ""}${chain.length ? `, then to the fallbacks in order: ${list(chain)}` : ""}.`,
    staticAnswer
      ? `When all of them fail, the client gets ${staticAnswer.description}.`
      : "There is no static answer at the end: when every backend fails, the client sees the failure.",
    members.some((b) => b.drained) &&
      `Drained now (spec.drain): ${list(members.filter((b) => b.drained).map((b) => b.name))}; they get no new requests until the name leaves spec.drain.`,
    members.some((b) => b.hosts === 0 && !b.drained) &&
      `Without a ready endpoint, so skipped: ${list(members.filter((b) => b.hosts === 0 && !b.drained).map((b) => b.name))}.`,
    retry.attempts === 0
      ? "Each request gets 1 try: retries are off (retry.attempts 0), so a failure is not retried and no per-try timeout applies."
      : `Each request gets up to ${count(tries, "try", "tries")}: the first and ${count(retry.attempts, "retry", "retries")} (retry.attempts), each try cut off after ${ms(retry.perTryTimeoutMs)} (perTryTimeout), the whole request after ${timeouts.requestMs ? ms(timeouts.requestMs) : "no limit"} (timeouts.request).`,
    retry.attempts > 0 &&
      (retry.fallbackOnRetry
        ? "Each retry goes to the next backend in line that has a healthy host (fallbackOnRetry); after the last one the line starts again at the first."
        : `Retries go to the backend that failed (fallbackOnRetry is false): the fallbacks get requests only once ${primary.name} has no healthy host (ejected, failing health checks, or drained). A retry waits as long as the failed answer's Retry-After (or X-RateLimit-Reset) asks, up to the request timeout.`),
    `Retries wait a random back-off first, below ${list(backoffBounds(ir).map(ms))} for retry ${list(backoffBounds(ir).map((_, i) => String(i + 1)))} (baseInterval ${ms(retry.backoff.baseMs)} doubling, at most maxInterval ${ms(retry.backoff.maxMs)}).`,
  );

  const external = members.filter((b) => b.handling?.length);
  if (external.length) say("external backends", ...external.map((b) => `${b.name} ${list(b.handling!)}.`));

  const primaryScenario = (scenario: Parameters<typeof simulate>[1]) => simulate(view, scenario);

  // ---- refused connections ----
  const refused = primaryScenario({ down: [primary.name] });
  say(
    "connection refused",
    `If ${primary.name} refuses connections (crashed, nothing listening), then`,
    phasesInWords(refused),
    `A host that does not answer at all (a vanished address) fails the same way after the connect timeout, ${ms(timeouts.connectMs)}${perTryMs !== null && perTryMs < timeouts.connectMs ? `, or the per-try timeout, ${ms(perTryMs)}, which is shorter` : ""}.`,
  );

  // ---- 5xx ----
  const retried5xx = [500, 502, 503, 504].filter((s) => retriesFor(ir, s));
  say(
    "5xx answers",
    retried5xx.length === 0
      ? `No 5xx answer is retried (retryOn ${retry.retryOn.join(", ") || "is empty"}): it reaches the client${staticAnswer && [500, 502, 503, 504].some((s) => isFailureStatus(ir, s)) ? " unless retryOn counts it as failure" : ""}.`
      : retry.retryOn.includes("5xx")
        ? "Every 5xx answer is retried (5xx in retryOn)."
        : `502, 503 and 504 are retried (gateway-error in retryOn); other 5xx such as 500 are not${retry.retryOn.includes("retriable-status-codes") && retry.retriableStatusCodes.some((c) => c >= 500) ? ` (except ${list(retry.retriableStatusCodes.filter((c) => c >= 500).map(String))}, in retriableStatusCodes)` : ""}.`,
    `If ${primary.name} answers 503, then`,
    phasesInWords(primaryScenario({ status: { [primary.name]: 503 } })),
    !retry.retryOn.includes("5xx") &&
      `If it answers 500, then ${phasesInWords(primaryScenario({ status: { [primary.name]: 500 } }))}`,
  );

  // ---- 429 ----
  const sim429 = primaryScenario({ status: { [primary.name]: 429 } });
  say(
    "429 answers",
    retriesFor(ir, 429)
      ? "429 is retried (in retriableStatusCodes, with retriable-status-codes in retryOn)."
      : `429 is not retried (add retriable-status-codes to retryOn and 429 to retriableStatusCodes for that)${retry.retryOn.includes("envoy-ratelimited") ? "; envoy-ratelimited retries only what Envoy's own rate limiter refused" : ""}.`,
    `If ${primary.name} answers 429, then`,
    phasesInWords(sim429),
    ir.backends.some((b) => b.kind === "External" && b.ejectOnRateLimit)
      ? `A 4xx answer never counts for outlier detection, so ${primary.name} answering 429 stays in line: every request pays its try first. The external backends with ejectOnRateLimit are the exception: their 429 counts as a 503, so a rate-limited one is ejected.`
      : "A 4xx answer never counts for outlier detection, so a backend answering 429 stays in line: every request pays its try first (an external backend can opt into ejection on 429 with ejectOnRateLimit).",
  );

  // ---- slow ----
  say(
    "slow backend",
    `If ${primary.name} is slow (no answer within ${perTryMs !== null ? `the per-try timeout, ${ms(perTryMs)}` : timeouts.requestMs ? `the request timeout, ${ms(timeouts.requestMs)}, as there is no per-try timeout without retries` : "any time: there is neither a per-try nor a request timeout"}), then`,
    phasesInWords(primaryScenario({ slow: [primary.name] })),
  );

  // ---- worst case ----
  const worstCase = active
    .filter((b) => b !== active[0])
    .map((b) => {
      const before = active.slice(0, active.indexOf(b)).map((x) => x.name);
      const slow = simulate(view, { slow: before }).firstRequests;
      const refuse = simulate(view, { down: before }).firstRequests;
      const reached = (o: Outcome) => (o.answeredBy === b.name ? o.waitMs.max : null);
      const entry: Explanation["numbers"]["worstCase"][number] = {
        backend: b.name,
        whenEarlierSlowMs: reached(slow),
        whenEarlierRefuseMs: reached(refuse),
      };
      if (entry.whenEarlierSlowMs === null || entry.whenEarlierRefuseMs === null) {
        entry.note = `the first requests do not reach ${b.name} while ${list(before)} fail${before.length === 1 ? "s" : ""} (${slow.answeredBy === b.name ? refuse.why : slow.why}); it serves once they are taken out of rotation`;
      }
      return entry;
    });
  const allSlow = active.length ? simulate(view, { slow: active.map((b) => b.name) }).firstRequests : undefined;
  const allRefuse = active.length ? simulate(view, { down: active.map((b) => b.name) }).firstRequests : undefined;
  const staticNumbers = staticAnswer
    ? {
        whenAllSlowMs: allSlow?.answeredBy === "static" ? allSlow.waitMs.max : null,
        whenAllRefuseMs: allRefuse?.answeredBy === "static" ? allRefuse.waitMs.max : active.length ? null : 0,
      }
    : null;
  say(
    "worst-case wait",
    ...worstCase.map((w) =>
      w.note
        ? `${w.backend}: ${w.note}.`
        : `Before ${w.backend} answers, a client waits at most ${ms(w.whenEarlierSlowMs!)} when the backends before it are slow (${formula(ir, active.indexOf(active.find((b) => b.name === w.backend)!))}), and at most ${ms(w.whenEarlierRefuseMs!)} when they refuse connections (back-offs only).`,
    ),
    !!staticAnswer &&
      !!staticNumbers &&
      (staticNumbers.whenAllSlowMs !== null
        ? `Before the static answer: at most ${ms(staticNumbers.whenAllSlowMs)} when every backend is slow (${formula(ir, tries)}), ${staticNumbers.whenAllRefuseMs !== null ? `${ms(staticNumbers.whenAllRefuseMs)} when every one refuses connections` : "less when they refuse connections"}; at once while every backend is ejected.`
        : `Before the static answer when every backend is slow: ${allSlow ? `${allSlow.waitMs.max === null ? "forever" : ms(allSlow.waitMs.max)} (${allSlow.why})` : "at once (no backend is in rotation)"}.`),
    timeouts.requestMs > 0 && `No request waits longer than the request timeout, ${ms(timeouts.requestMs)}.`,
  );

  // ---- static answer ----
  if (staticAnswer?.static) {
    const s = staticAnswer.static;
    const failures = failureStatuses(ir);
    say(
      "static answer",
      `The static answer is ${s.status}${s.body ? ` with the body ${JSON.stringify(s.body)}` : " with an empty body"}${s.headers.length ? ` and the headers ${s.headers.map(([k, v]) => `${k}: ${v}`).join(", ")}` : ""}.`,
      `Envoy serves it itself when a request failed: every try used up, no backend with a healthy host (all ejected, drained or without endpoints), the request timeout (${timeouts.requestMs ? ms(timeouts.requestMs) : "none"}) run out, or a final answer retryOn counts as a failure (${failures.length ? list(failures) : "none: retryOn names no status"}).`,
      "It is never retried, and it is no backend: it cannot be drained or ejected.",
    );
  } else {
    say(
      "static answer",
      "There is no static answer: when every backend fails, the client gets the last failure (Envoy's 503 for a refused connection or no healthy backend, 504 for a timeout, or the backend's own answer).",
    );
  }

  // ---- outlier detection ----
  const maxEjection = Math.max(e.maxEjectionMs, e.baseEjectionMs);
  say(
    "outlier detection",
    `On every backend, a host is ejected after ${count(e.consecutive5xx, "5xx answer")} in a row (consecutive5xx)${e.splitExternalLocalOriginErrors ? "" : ", refused connections and timeouts included (splitExternalLocalOriginErrors is false)"}, or ${count(e.consecutiveGatewayErrors, "gateway error")} (502, 503, 504) in a row (consecutiveGatewayErrors).`,
    e.splitExternalLocalOriginErrors &&
      `Refused connections and timeouts are counted apart: ${e.consecutiveLocalOriginFailures} in a row eject (consecutiveLocalOriginFailures).`,
    `An ejected host gets no requests for ${ms(e.baseEjectionMs)} the first time, ${ms(Math.min(2 * e.baseEjectionMs, maxEjection))} the second, and so on up to ${ms(maxEjection)} (baseEjectionTime times the ejections so far, at most maxEjectionTime); ejections are lifted at the next check, every ${ms(e.intervalMs)} (interval), so a backend that recovered gets traffic back within ${ms(e.baseEjectionMs + e.intervalMs)} of its first ejection.`,
    `While a backend is ejected, requests go straight to the next one: no extra try, no wait.`,
    e.maxEjectionPercent >= 100
      ? "Every host of a backend may be ejected (maxEjectionPercent 100)."
      : `At most ${e.maxEjectionPercent}% of a backend's hosts may be ejected (maxEjectionPercent): a backend with fewer than ${Math.ceil(100 / Math.max(e.maxEjectionPercent, 1))} hosts keeps all of them, failing or not${e.maxEjectionPercent === 0 ? " (0: nothing is ever ejected)" : ""}, and its traffic pays a try there first.`,
    e.failurePercentage &&
      `Also ejected: a host failing ${e.failurePercentage.threshold}% of its requests in an interval, once the backend has at least ${e.failurePercentage.minimumHosts} hosts and the host ${e.failurePercentage.requestVolume} requests.`,
    "4xx answers never count.",
  );

  // ---- health checks ----
  const hc = ir.healthCheck;
  say(
    "health checks",
    hc
      ? `Envoy sends GET ${hc.path} to every host of each Service backend every ${ms(hc.intervalMs)} (timeout ${ms(hc.timeoutMs)}), also while it gets no traffic; ${count(hc.unhealthyThreshold, "failed check")} in a row take a host out (about ${ms(hc.unhealthyThreshold * hc.intervalMs)}), ${count(hc.healthyThreshold, "passed check")} bring it back. An answer from 200 to 399 passes. External backends are not checked.`
      : "No active health checks (spec.healthCheck unset): a broken backend is noticed only by the requests that fail on it (outlier detection).",
  );

  // ---- limits ----
  const l = ir.limits;
  say(
    "limits",
    `Per backend: at most ${l.maxConnections} connections, ${l.maxPendingRequests} requests waiting for one, ${l.maxRequests} requests in flight (circuitBreaker); beyond them Envoy fails the request at once (503, an overflow, not retried).`,
    retry.budget
      ? `Retries are held to a budget: ${retry.budget.percent}% of the requests in flight, at least ${retry.budget.minConcurrency} (retry.budget, in place of circuitBreaker.maxRetries).`
      : `At most ${l.maxRetries} retries in flight per backend (circuitBreaker.maxRetries); past that a failure is not retried.`,
    `A connection must open within ${ms(timeouts.connectMs)} (timeouts.connect); an unused one is closed after ${ms(timeouts.idleMs)} (timeouts.idle).`,
  );

  return {
    policy: view.key,
    target: primary.description,
    order: view.backends.map((b) => ({
      position: b.position,
      name: b.name,
      kind: b.kind,
      description: b.description,
      drained: b.drained,
      ...(b.assumption ? { assumption: b.assumption } : {}),
    })),
    sections,
    numbers: {
      triesPerRequest: tries,
      perTryTimeoutMs: perTryMs,
      requestTimeoutMs: timeouts.requestMs || null,
      connectTimeoutMs: timeouts.connectMs,
      backoffMaxMs: backoffBounds(ir),
      worstCase,
      staticAnswer: staticNumbers,
      ejection: {
        consecutive5xx: e.consecutive5xx,
        consecutiveGatewayErrors: e.consecutiveGatewayErrors,
        consecutiveLocalOriginFailures: e.splitExternalLocalOriginErrors ? e.consecutiveLocalOriginFailures : null,
        firstEjectionMs: e.baseEjectionMs,
        maxEjectionMs: maxEjection,
        intervalMs: e.intervalMs,
        backWithinMs: e.baseEjectionMs + e.intervalMs,
        maxEjectionPercent: e.maxEjectionPercent,
      },
    },
  };
}

export function describeExplanation(x: Explanation): string {
  return [
    `FallbackPolicy ${x.policy}`,
    ...x.sections.map((s) => `${s.topic[0]!.toUpperCase()}${s.topic.slice(1)}: ${s.text}`),
  ].join("\n\n");
}

/** The upper bound of the back-off before each retry. */
function backoffBounds(ir: PolicyIR): number[] {
  const { attempts, backoff } = ir.retry;
  return Array.from({ length: attempts }, (_, i) => Math.min(backoff.baseMs * 2 ** i, backoff.maxMs));
}

/** "2 x 500 ms per-try timeout + back-offs up to 25 + 50 ms" for `slowTries` slow tries. */
function formula(ir: PolicyIR, slowTries: number): string {
  const perTry = ir.retry.attempts > 0 ? ir.retry.perTryTimeoutMs : 0;
  const bounds = backoffBounds(ir).slice(0, Math.max(0, slowTries - (slowTries >= ir.retry.attempts + 1 ? 1 : 0)));
  const slow = perTry > 0 ? `${slowTries} x ${ms(perTry)} per-try timeout` : `the request timeout`;
  return bounds.length ? `${slow} + back-offs up to ${bounds.map((b) => String(b)).join(" + ")} ms` : slow;
}

function retriesFor(ir: PolicyIR, status: number): boolean {
  const on = ir.retry.retryOn;
  return (
    (on.includes("5xx") && status >= 500) ||
    (on.includes("gateway-error") && [502, 503, 504].includes(status)) ||
    (on.includes("retriable-4xx") && status === 409) ||
    (on.includes("retriable-status-codes") && ir.retry.retriableStatusCodes.includes(status))
  );
}

/** The statuses a final answer is replaced by the static answer for (compile/envoy/routes.ts). */
function failureStatuses(ir: PolicyIR): string[] {
  const on = ir.retry.retryOn;
  const out: string[] = [];
  if (on.includes("5xx")) out.push("any 5xx");
  else if (on.includes("gateway-error")) out.push("502", "503", "504");
  if (on.includes("retriable-4xx")) out.push("409");
  if (on.includes("envoy-ratelimited")) out.push("429");
  if (on.includes("retriable-status-codes"))
    for (const c of ir.retry.retriableStatusCodes)
      if (!out.includes(String(c)) && !(on.includes("5xx") && c >= 500)) out.push(String(c));
  return [...new Set(out)];
}

/** A simulation's phases as sentences: the first requests, then each change. */
function phasesInWords(s: Simulation): string {
  const parts = s.phases.map((p, i) => {
    const what = outcomeInWords(p.outcome);
    if (i === 0)
      return s.phases.length > 1 ? `requests 1 to ${p.requests?.to ?? 1}: ${what}` : `every request: ${what}`;
    return `${p.requests ? `from request ${p.requests.from}` : `after about ${ms(p.afterMs ?? 0)}`} (${p.change}): ${what}`;
  });
  return `${parts.join("; ")}.`;
}

function outcomeInWords(o: Outcome): string {
  const who =
    o.answeredBy === "static"
      ? `the static answer (${o.status})`
      : o.answeredBy === "envoy"
        ? `Envoy's own ${o.status}`
        : o.answeredBy === "nobody"
          ? "no answer"
          : `${o.answeredBy} (${o.status})`;
  const wait =
    o.waitMs.max === null
      ? "forever"
      : o.waitMs.min === o.waitMs.max
        ? ms(o.waitMs.max)
        : `${ms(o.waitMs.min ?? 0)} to ${ms(o.waitMs.max)}`;
  const route = o.path.length > 1 ? ` via ${o.path.map((t) => `${t.backend} (${t.result})`).join(", then ")}` : "";
  return `${who} answers after ${count(o.tries, "try", "tries")}${route}, the client waiting ${wait}`;
}
