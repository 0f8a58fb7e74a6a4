// What Envoy does with a request under a failure scenario, worked out from the policy's IR
// and the Envoy configuration the compiler makes of it (see compile/envoy): an aggregate
// cluster that sends a request to the first backend with a healthy host, a route retry
// policy whose retries skip the backends already tried (previous_priorities, when
// fallbackOnRetry), a jittered exponential back-off, a per-try and a request timeout, outlier
// detection on every backend, and the custom_response filter that puts the static answer in
// place of a final failure.
//
// The model, and the Envoy behaviour it rests on:
// - A try to a backend that refuses the connection fails at once (connect failure); it is
//   retried when retryOn has connect-failure, 5xx, gateway-error or reset.
// - A try to a slow backend (slower than the per-try timeout) fails at the per-try timeout,
//   and is retried when retryOn has 5xx, gateway-error or reset. With attempts 0 the route
//   has no retry policy, hence no per-try timeout: the try waits for the request timeout.
// - An answer is retried when retryOn says so: 5xx (any 5xx), gateway-error (502, 503, 504),
//   retriable-4xx (409), retriable-status-codes (those codes). envoy-ratelimited retries only
//   answers Envoy's own rate limiter marks, never a backend's plain 429.
// - The back-off before retry n is random below min(baseInterval * 2^(n-1), maxInterval).
// - The request timeout bounds everything: when it runs out Envoy answers 504.
// - A final failure (Envoy's own 5xx, or an answer with a status retryOn counts as failure)
//   becomes the static answer, when the policy has one; it is never retried.
// - With fallbackOnRetry each retry goes to the next backend in line that has a healthy
//   host; after the last one the line starts again at the first. Without it, retries go to
//   the backend that failed, and the fallbacks serve only once it has no healthy host.
// - Outlier detection counts per host: refused connections and timeouts count as 5xx and
//   gateway errors (unless splitExternalLocalOriginErrors, then as local-origin failures);
//   a host is ejected after its threshold of them in a row, if maxEjectionPercent allows.
// - An external backend with ejectOnRateLimit answers Envoy's route a 503 for its 429 (its
//   internal listener turns one into the other), so the model treats it as that 503.
// - Active health checks (spec.healthCheck) take a failing Service backend's hosts out
//   after unhealthyThreshold failed checks, whether it gets traffic or not.
import type { PolicyIR } from "../compile/ir.ts";
import { ToolError } from "./errors.ts";
import type { BackendView, PolicyView } from "./model.ts";
import { count, list, ms } from "./words.ts";

export type Scenario = {
  /** Backends that refuse connections (crashed, nothing listening). */
  down?: string[];
  /** Backends slower than the per-try timeout (or hanging). */
  slow?: string[];
  /** Backends answering this HTTP status to every request. */
  status?: Record<string, number>;
};

type Behaviour = { kind: "ok" } | { kind: "down" } | { kind: "slow" } | { kind: "status"; status: number };

export type Try = {
  try: number;
  backend: string;
  /** What happened, in words. */
  result: string;
  /** How long this try took (ms). */
  ms: number;
  /** The upper bound of the back-off before this try (ms); absent for the first. */
  backoffMaxMs?: number;
  retried: boolean;
};

export type Outcome = {
  /** The backend that answered, "static" for the static answer, or "envoy" for Envoy's own error answer. */
  answeredBy: string;
  status: number;
  /** Tries sent to backends. */
  tries: number;
  path: Try[];
  /** How long the client waits: from the fastest back-offs (min) to the slowest (max); null: forever. */
  waitMs: { min: number | null; max: number | null };
  why: string;
};

export type Phase = {
  /** Requests this phase covers: from, to (absent: on from there). */
  requests?: { from: number; to?: number };
  /** After how long, for phases health checks bring about. */
  afterMs?: number;
  change?: string;
  outcome: Outcome;
};

export type Ejection = {
  backend: string;
  by: "outlier detection" | "health checks";
  /** Requests after which the last host went out (outlier detection). */
  afterRequests?: number;
  /** Time after which it went out (health checks). */
  afterMs?: number;
  /** For how long, the first time (outlier detection). */
  forMs?: number;
  hosts?: string;
  detail: string;
};

export type Simulation = {
  policy: string;
  scenario: { down: string[]; slow: string[]; status: Record<string, number> };
  /** The first requests, before outlier detection or health checks react. */
  firstRequests: Outcome;
  /** Once Envoy took out what it takes out: the answer from then on. */
  steadyState: Outcome;
  phases: Phase[];
  ejections: Ejection[];
  notes: string[];
};

/** Checks a scenario against the policy's backends; every name must be one of them. */
export function checkScenario(view: PolicyView, scenario: Scenario): Map<string, Behaviour> {
  const names = view.backends.filter((b) => b.kind !== "StaticResponse").map((b) => b.name);
  const known = `the backends of FallbackPolicy ${view.key} are ${list(names)}${view.backends.some((b) => b.kind === "StaticResponse") ? " (and the static answer, which cannot fail)" : ""}`;
  const behaviours = new Map<string, Behaviour>();
  const set = (field: string, name: unknown, behaviour: Behaviour) => {
    if (typeof name !== "string" || !names.includes(name)) {
      const what =
        name === "static"
          ? "the static answer cannot fail"
          : `${JSON.stringify(name)} is not a backend of FallbackPolicy ${view.key}`;
      throw new ToolError(`${field}: ${what}; ${known}`, [
        { object: `FallbackPolicy ${view.key}`, field, message: what },
      ]);
    }
    if (behaviours.has(name))
      throw new ToolError(`${field}: ${name} is named twice in the scenario; give each backend one behaviour`, [
        { field, message: "named twice" },
      ]);
    behaviours.set(name, behaviour);
  };
  (scenario.down ?? []).forEach((name, i) => set(`scenario.down[${i}]`, name, { kind: "down" }));
  (scenario.slow ?? []).forEach((name, i) => set(`scenario.slow[${i}]`, name, { kind: "slow" }));
  for (const [name, status] of Object.entries(scenario.status ?? {})) {
    if (!Number.isInteger(status) || status < 100 || status > 599) {
      throw new ToolError(`scenario.status.${name}: ${JSON.stringify(status)} is not an HTTP status (100 to 599)`, [
        { field: `scenario.status.${name}`, message: "not an HTTP status" },
      ]);
    }
    set(`scenario.status.${name}`, name, { kind: "status", status });
  }
  return behaviours;
}

type Member = BackendView & { behaviour: Behaviour; index: number };
type Ctx = { view: PolicyView; ir: PolicyIR; members: Member[]; staticAnswer: BackendView | undefined };

export function simulate(view: PolicyView, scenario: Scenario): Simulation {
  const behaviours = checkScenario(view, scenario);
  const members = view.backends
    .filter((b) => b.kind !== "StaticResponse")
    .map((b, index): Member => ({ ...b, index, behaviour: asEnvoySees(b, behaviours.get(b.name) ?? { kind: "ok" }) }));
  const ctx: Ctx = { view, ir: view.ir, members, staticAnswer: view.backends.find((b) => b.kind === "StaticResponse") };
  const notes: string[] = view.backends.flatMap((b) => (b.assumption ? [b.assumption] : []));
  for (const b of view.backends)
    if (b.rateLimitedAs503 && scenario.status?.[b.name] === 429)
      notes.push(
        `${b.name}'s 429 reaches Envoy's route as a 503 (ejectOnRateLimit): retried and counted for outlier detection as one.`,
      );
  for (const m of members) {
    if (m.drained) notes.push(`${m.name} is drained (spec.drain): it gets no new requests.`);
    else if (m.hosts === 0) notes.push(`${m.name} has no ready endpoint: Envoy skips it.`);
    if (m.hosts === undefined && m.behaviour.kind !== "ok")
      notes.push(`${m.name} is resolved by name (DNS): counted as one host.`);
  }

  const rotation = members.map((m) => m.hosts !== 0 && !m.drained);
  const firstRequests = request(ctx, rotation);
  const phases: Phase[] = [{ requests: { from: 1 }, outcome: firstRequests }];
  const ejections: Ejection[] = [];
  const { ejection } = ctx.ir;

  // Outlier detection: requests one after another, failures counted per backend.
  const failures = members.map(() => 0);
  const settled = members.map(() => false);
  for (let r = 1; r <= 10_000; r++) {
    const outcome = r === 1 ? firstRequests : request(ctx, rotation);
    let progress = false;
    const ejectedNow: Member[] = [];
    for (const t of outcome.path) {
      const m = members.find((x) => x.name === t.backend)!;
      const threshold = ejectionThreshold(ctx.ir, m.behaviour);
      if (threshold === undefined || settled[m.index] || !rotation[m.index]) continue;
      const hosts = m.hosts ?? 1;
      const ejectable = Math.floor((ejection.maxEjectionPercent * hosts) / 100);
      if (ejectable === 0) {
        settled[m.index] = true;
        notes.push(
          `${m.name} is never ejected: maxEjectionPercent ${ejection.maxEjectionPercent}% of its ${count(hosts, "host")} is less than one host.`,
        );
        continue;
      }
      failures[m.index]!++;
      progress = true;
      if (failures[m.index]! >= threshold.count * ejectable) {
        settled[m.index] = true;
        const detail = `${threshold.count} ${threshold.what} in a row (${threshold.field})`;
        if (ejectable < hosts) {
          ejections.push({
            backend: m.name,
            by: "outlier detection",
            afterRequests: r,
            forMs: ejection.baseEjectionMs,
            hosts: `${ejectable} of ${hosts}`,
            detail: `${detail}; maxEjectionPercent ${ejection.maxEjectionPercent}% lets only ${ejectable} of its ${hosts} hosts go, so it stays in line`,
          });
        } else {
          ejectedNow.push(m);
          ejections.push({
            backend: m.name,
            by: "outlier detection",
            afterRequests: r,
            forMs: ejection.baseEjectionMs,
            detail,
          });
        }
      }
    }
    if (ejectedNow.length) {
      for (const m of ejectedNow) rotation[m.index] = false;
      phases.at(-1)!.requests!.to = r;
      phases.push({
        requests: { from: r + 1 },
        change: `${list(ejectedNow.map((m) => m.name))} ejected by outlier detection`,
        outcome: request(ctx, rotation),
      });
    }
    if (!progress) break;
  }

  // Active health checks take out failing Service backends with or without traffic.
  const hc = ctx.ir.healthCheck;
  if (hc) {
    const failing = members.filter((m) => m.kind === "Service" && rotation[m.index] && failsHealthCheck(m.behaviour));
    if (failing.length) {
      const afterMs = hc.unhealthyThreshold * hc.intervalMs;
      for (const m of failing) {
        rotation[m.index] = false;
        ejections.push({
          backend: m.name,
          by: "health checks",
          afterMs,
          detail: `${count(hc.unhealthyThreshold, "failed check")} of ${hc.path}, one every ${ms(hc.intervalMs)}`,
        });
      }
      phases.push({
        afterMs,
        change: `${list(failing.map((m) => m.name))} out of rotation by health checks (about ${ms(afterMs)})`,
        outcome: request(ctx, rotation),
      });
      notes.push(
        `Health checks are assumed to get the same answer from ${list(failing.map((m) => m.name))} as requests do.`,
      );
    }
  }
  const steadyState = phases.at(-1)!.outcome;
  if (ejections.some((e) => e.by === "outlier detection" && !e.hosts)) {
    notes.push(
      `An ejection lasts ${ms(ejection.baseEjectionMs)} the first time, longer each time after (up to ${ms(Math.max(ejection.maxEjectionMs, ejection.baseEjectionMs))}); a backend still failing when it returns costs a few requests the first path again before it is ejected anew.`,
    );
  }
  if (ctx.ir.limits.maxRetries > 0 || ctx.ir.retry.budget) {
    notes.push(
      ctx.ir.retry.budget
        ? `Under load retries are limited by the retry budget (${ctx.ir.retry.budget.percent}% of active requests, at least ${ctx.ir.retry.budget.minConcurrency}); a failure beyond it is not retried.`
        : `Under load at most ${ctx.ir.limits.maxRetries} retries are in flight per backend (circuitBreaker.maxRetries); a failure beyond that is not retried.`,
    );
  }
  return {
    policy: view.key,
    scenario: { down: scenario.down ?? [], slow: scenario.slow ?? [], status: scenario.status ?? {} },
    firstRequests,
    steadyState,
    phases,
    ejections,
    notes,
  };
}

/** What Envoy answers one request with, given which backends are in rotation. */
function request(ctx: Ctx, rotation: boolean[]): Outcome {
  const { ir, members } = ctx;
  const { retry } = ir;
  const candidates = members.filter((m) => rotation[m.index]);
  const requestMs = ir.timeouts.requestMs; // 0: no request timeout
  if (!candidates.length) {
    return finish(ctx, [], 0, 0, {
      local: 503,
      why: "no backend has a healthy host in rotation (every one is ejected, drained, failing its health checks or without endpoints)",
    });
  }
  const tries = retry.attempts + 1;
  // Without retries the route has no retry policy, and so no per-try timeout.
  const perTryMs = retry.attempts > 0 ? retry.perTryTimeoutMs : 0;
  const path: Try[] = [];
  const tried = new Set<number>();
  let [min, max] = [0, 0];
  for (let n = 1; n <= tries; n++) {
    const backoffMaxMs = n > 1 ? Math.min(retry.backoff.baseMs * 2 ** (n - 2), retry.backoff.maxMs) : undefined;
    if (backoffMaxMs !== undefined) max += backoffMaxMs;
    let pick = retry.fallbackOnRetry ? candidates.find((m) => !tried.has(m.index)) : candidates[0];
    if (!pick) {
      tried.clear(); // every backend in line was tried: previous_priorities starts again at the first
      pick = candidates[0]!;
    }
    tried.add(pick.index);
    const b = pick.behaviour;
    const entry = (result: string, took: number, retried: boolean): Try => ({
      try: n,
      backend: pick.name,
      result,
      ms: took,
      ...(backoffMaxMs !== undefined ? { backoffMaxMs } : {}),
      retried,
    });

    if (b.kind === "ok" || (b.kind === "status" && b.status < 400)) {
      const status = b.kind === "ok" ? 200 : b.status;
      path.push(entry(`answered ${status}`, 0, false));
      return finish(ctx, path, min, max, {
        backend: pick,
        status,
        why: n === 1 ? `${pick.name} answers` : `${pick.name} answers the ${n === 2 ? "retry" : `${n - 1}th retry`}`,
      });
    }
    if (b.kind === "slow") {
      const took = perTryMs > 0 ? perTryMs : Infinity;
      if (requestMs > 0 && min + took >= requestMs) {
        path.push(
          entry(`had not answered when the request timeout (${ms(requestMs)}) ran out`, requestMs - min, false),
        );
        return finish(ctx, path, requestMs, requestMs, {
          local: 504,
          why: `the request timeout (${ms(requestMs)}) ran out${perTryMs === 0 ? " (without retries there is no per-try timeout)" : ""}`,
        });
      }
      if (took === Infinity) {
        path.push(entry("never answers, and nothing times it out (no per-try or request timeout)", Infinity, false));
        return {
          answeredBy: "nobody",
          status: 0,
          tries: path.length,
          path,
          waitMs: { min: null, max: null },
          why: "the request waits until the client gives up: the policy sets neither a per-try nor a request timeout",
        };
      }
      min += took;
      max = requestMs > 0 ? Math.min(max + took, requestMs) : max + took;
      const retried = n < tries && retriesTimeout(retry.retryOn);
      path.push(entry(`gave no answer within the per-try timeout (${ms(perTryMs)})`, took, retried));
      if (!retried)
        return finish(ctx, path, min, max, {
          local: 504,
          why:
            n < tries
              ? "a per-try timeout is not retried: retryOn has none of 5xx, gateway-error, reset"
              : "the retries are used up",
        });
      continue;
    }
    if (b.kind === "down") {
      const retried = n < tries && retriesConnectFailure(retry.retryOn);
      path.push(entry("refused the connection", 0, retried));
      if (!retried)
        return finish(ctx, path, min, max, {
          local: 503,
          why:
            n < tries
              ? "a refused connection is not retried: retryOn has none of connect-failure, 5xx, gateway-error, reset"
              : "the retries are used up",
        });
      continue;
    }
    // An answer of 400 or more.
    const retriable = retriesStatus(retry, b.status);
    const retried = n < tries && retriable;
    path.push(entry(`answered ${b.status}`, 0, retried));
    if (!retried) {
      return finish(ctx, path, min, max, {
        backend: pick,
        status: b.status,
        why: retriable ? "the retries are used up" : `${b.status} is not retried (retryOn ${retry.retryOn.join(", ")})`,
      });
    }
  }
  throw new Error("unreachable");
}

/** The answer the client gets, once the last try is done: a backend's, the static answer, or Envoy's own. */
function finish(
  ctx: Ctx,
  path: Try[],
  min: number,
  max: number,
  end: { backend: Member; status: number; why: string } | { local: 503 | 504; why: string },
): Outcome {
  const { ir, staticAnswer } = ctx;
  const waitMs = { min, max: Math.max(min, max) };
  const base = { tries: path.length, path, waitMs };
  const failure = "local" in end ? true : isFailureStatus(ir, end.status);
  if (failure && staticAnswer?.static) {
    const what = "local" in end ? `Envoy's own ${end.local}` : `${end.backend.name}'s ${end.status}`;
    return {
      ...base,
      answeredBy: "static",
      status: staticAnswer.static.status,
      why: `${end.why}; the static answer replaces ${what}`,
    };
  }
  if ("local" in end) {
    const text =
      end.local === 503 ? (path.length ? "upstream connect error" : "no healthy upstream") : "upstream request timeout";
    return {
      ...base,
      answeredBy: "envoy",
      status: end.local,
      why: `${end.why}; with no static answer the client gets Envoy's ${end.local} (${text})`,
    };
  }
  if (failure)
    return {
      ...base,
      answeredBy: end.backend.name,
      status: end.status,
      why: `${end.why}; with no static answer the client gets ${end.backend.name}'s ${end.status}`,
    };
  return { ...base, answeredBy: end.backend.name, status: end.status, why: end.why };
}

const has = (retryOn: string[], ...any: string[]) => any.some((r) => retryOn.includes(r));
export const retriesConnectFailure = (retryOn: string[]) =>
  has(retryOn, "connect-failure", "5xx", "gateway-error", "reset");
export const retriesTimeout = (retryOn: string[]) => has(retryOn, "5xx", "gateway-error", "reset");

/** A backend's behaviour as the route sees it: an ejectOnRateLimit backend's 429 arrives as a 503 (compile/envoy/mediated.ts). */
function asEnvoySees(backend: BackendView, behaviour: Behaviour): Behaviour {
  return backend.rateLimitedAs503 && behaviour.kind === "status" && behaviour.status === 429
    ? { kind: "status", status: 503 }
    : behaviour;
}

/** Whether Envoy retries a backend's answer with this status. */
export function retriesStatus(retry: PolicyIR["retry"], status: number): boolean {
  const on = retry.retryOn;
  return (
    (on.includes("5xx") && status >= 500) ||
    (on.includes("gateway-error") && (status === 502 || status === 503 || status === 504)) ||
    (on.includes("retriable-4xx") && status === 409) ||
    (on.includes("retriable-status-codes") && retry.retriableStatusCodes.includes(status))
  );
}

/** Whether a final answer with this status is a failure the static answer replaces (compile/envoy/routes.ts failureStatuses). */
export function isFailureStatus(ir: PolicyIR, status: number): boolean {
  const on = ir.retry.retryOn;
  return retriesStatus(ir.retry, status) || (on.includes("envoy-ratelimited") && status === 429);
}

/** How many failures in a row eject a host of a backend behaving so, and by which setting; undefined: never. */
function ejectionThreshold(ir: PolicyIR, b: Behaviour): { count: number; what: string; field: string } | undefined {
  const e = ir.ejection;
  const local = b.kind === "down" || b.kind === "slow";
  const what =
    b.kind === "down"
      ? "refused connections"
      : b.kind === "slow"
        ? "timeouts"
        : `${b.kind === "status" ? b.status : ""} answers`;
  if (local && e.splitExternalLocalOriginErrors)
    return { count: e.consecutiveLocalOriginFailures, what, field: "consecutiveLocalOriginFailures" };
  // Unsplit, a refused connection counts as a 503 and a timeout as a 504.
  const status = b.kind === "down" ? 503 : b.kind === "slow" ? 504 : b.kind === "status" ? b.status : 200;
  if (status < 500) return undefined;
  const gateway = status === 502 || status === 503 || status === 504;
  // Envoy counts a gateway error first: on a tie the gateway-failure ejection is the one.
  if (gateway && e.consecutiveGatewayErrors <= e.consecutive5xx)
    return { count: e.consecutiveGatewayErrors, what, field: "consecutiveGatewayErrors" };
  return { count: e.consecutive5xx, what, field: "consecutive5xx" };
}

function failsHealthCheck(b: Behaviour): boolean {
  return b.kind === "down" || b.kind === "slow" || (b.kind === "status" && (b.status < 200 || b.status >= 400));
}

// ---- words -----------------------------------------------------------------------------

/** One paragraph for a person. */
export function describeSimulation(s: Simulation): string {
  const scenario = [
    ...s.scenario.down.map((n) => `${n} refuses connections`),
    ...s.scenario.slow.map((n) => `${n} is slow`),
    ...Object.entries(s.scenario.status).map(([n, code]) => `${n} answers ${code}`),
  ];
  const lines = [`FallbackPolicy ${s.policy}, when ${scenario.length ? list(scenario) : "every backend works"}:`];
  for (const phase of s.phases) {
    const when = phase.requests
      ? phase.requests.from === 1
        ? phase.requests.to
          ? `Requests 1 to ${phase.requests.to}`
          : "Every request"
        : `From request ${phase.requests.from} (${phase.change})`
      : `After ${phase.afterMs === undefined ? "a while" : ms(phase.afterMs)} (${phase.change})`;
    lines.push(`- ${when}: ${describeOutcome(phase.outcome)}`);
  }
  for (const e of s.ejections) {
    lines.push(
      e.by === "outlier detection"
        ? `- ${e.backend}${e.hosts ? ` (${e.hosts} hosts)` : ""} is ejected after request ${e.afterRequests}: ${e.detail}; for ${ms(e.forMs ?? 0)} the first time.`
        : `- ${e.backend} fails its health checks: out of rotation after about ${ms(e.afterMs ?? 0)} (${e.detail}).`,
    );
  }
  for (const note of s.notes) lines.push(`Note: ${note}`);
  return lines.join("\n");
}

export function describeOutcome(o: Outcome): string {
  const steps = o.path.map(
    (t) => `${t.try > 1 ? `after a back-off of up to ${ms(t.backoffMaxMs ?? 0)}, ` : ""}${t.backend} ${t.result}`,
  );
  const answer =
    o.answeredBy === "static"
      ? `the static answer ${o.status}`
      : o.answeredBy === "envoy"
        ? `Envoy's own ${o.status}`
        : o.answeredBy === "nobody"
          ? "no answer"
          : `${o.answeredBy} (${o.status})`;
  const wait =
    o.waitMs.max === null
      ? "forever"
      : o.waitMs.min === o.waitMs.max
        ? ms(o.waitMs.min ?? 0)
        : `${ms(o.waitMs.min ?? 0)} to ${ms(o.waitMs.max)}`;
  return `${steps.length ? `${steps.join("; ")}. ` : ""}Answered by ${answer} after ${count(o.tries, "try", "tries")}, waiting ${wait} (plus the backends' own time): ${o.why}.`;
}
