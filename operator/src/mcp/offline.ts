// validate_policies and render_policies: fallbackctl validate and render for YAML handed
// over as text, on their code path (snapshotFromObjects -> compile with the default
// options) and with their words, plus the same findings as data.
import { validatePolicy } from "../api/validate.ts";
import { compile, type CompileOutput } from "../compile/compile.ts";
import { renderBootstrap } from "../compile/config-files.ts";
import { RESOURCE_TYPES } from "../compile/envoy/types.ts";
import type { ConditionResult } from "../compile/results.ts";
import { defaultOptions, keyOf, snapshotFromObjects } from "../compile/snapshot.ts";
import { ToolError, type Problem } from "./errors.ts";
import { describeObject, parseManifests } from "./manifests.ts";
import { viewPolicies, type PolicyView } from "./model.ts";
import { count } from "./words.ts";

export type Warning = { object: string; condition: string; reason: string; message: string };

export type Validation = {
  valid: number;
  invalid: number;
  policies: { policy: string; valid: boolean; errors: Problem[]; warnings: Warning[] }[];
  /** Objects that are neither FallbackPolicy, v1 Service nor discovery.k8s.io/v1 EndpointSlice: not read. */
  ignored: string[];
  /** What fallbackctl validate prints for the same input, line by line. */
  lines: string[];
};

/** fallbackctl validate of a YAML text. */
export function validateManifests(text: string): Validation {
  const objects = parseManifests(text);
  const { snapshot, ignored } = snapshotFromObjects(objects);
  const output = compile(snapshot, defaultOptions);
  // compile() formats each field error as one line; the structured errors are the same
  // FieldErrors, from the validator it calls. Results come sorted by key, invalid ones in
  // input order among the same key.
  const invalidObjects = new Map<string, unknown[]>();
  for (const object of snapshot.policies) {
    if (validatePolicy(object).ok) continue;
    const key = describeObject(object).replace(/^FallbackPolicy /, "");
    invalidObjects.set(key, [...(invalidObjects.get(key) ?? []), object]);
  }
  const lines: string[] = [];
  const policies: Validation["policies"] = [];
  let invalid = 0;
  for (const result of output.results) {
    const object = `FallbackPolicy ${result.key}`;
    lines.push(...result.errors);
    if (result.errors.length) {
      invalid++;
      const source = invalidObjects.get(result.key)?.shift();
      const validated = validatePolicy(source);
      const errors = validated.ok
        ? result.errors.map((message) => ({ object, message }))
        : validated.errors.map((e) => ({ object, field: e.path, message: e.message }));
      policies.push({ policy: result.key, valid: false, errors, warnings: [] });
      continue;
    }
    const warnings = notes(result.conditions).map((c) => ({
      object,
      condition: c.type,
      reason: c.reason,
      message: c.message,
    }));
    for (const w of warnings) lines.push(`warning: ${object}: ${w.condition}: ${w.message}`);
    policies.push({ policy: result.key, valid: true, errors: [], warnings });
  }
  lines.push(`${output.results.length - invalid} valid, ${invalid} invalid FallbackPolicies`);
  return { valid: output.results.length - invalid, invalid, policies, ignored: ignored.map(describeObject), lines };
}

/** What fallbackctl warns about for a valid policy: in conflict, or pointing at Services not in the input. */
const notes = (conditions: ConditionResult[]) =>
  conditions.filter((c) => c.status === "False" && (c.type === "Accepted" || c.type === "ResolvedRefs"));

export function describeValidation(v: Validation): string {
  const ignored = v.ignored.length
    ? [`Not read (neither FallbackPolicy, Service nor EndpointSlice): ${v.ignored.join(", ")}`]
    : [];
  return [...v.lines, ...ignored].join("\n");
}

// ---- render ----------------------------------------------------------------------------

export type PolicySummary = {
  policy: string;
  ready: { status: string; reason: string; message: string } | null;
  conditions: ConditionResult[];
  target: string;
  chain: {
    position: number;
    name: string;
    kind: string;
    description: string;
    drained: boolean;
    cluster?: string;
    hosts?: number;
    assumption?: string;
  }[];
  retry: {
    attempts: number;
    triesPerRequest: number;
    perTryTimeout: string;
    retryOn: string[];
    retriableStatusCodes: number[];
    backoff: { baseInterval: string; maxInterval: string };
    fallbackOnRetry: boolean;
    budget?: { percent: number; minConcurrency: number };
  };
  timeouts: { request: string; connect: string; idle: string };
  outlierDetection: Record<string, unknown>;
  circuitBreaker: Record<string, number>;
  healthCheck?: Record<string, unknown>;
  drain: string[];
  envoy: { aggregateCluster: string; memberClusters: string[] };
};

export type Rendering = {
  policies: PolicySummary[];
  /** On request: what Envoy gets, as fallbackctl render prints it and as the operator serves it over xDS. */
  envoy?: { bootstrap: string; resources: Record<string, { name: string; value: object }[]> };
};

/** fallbackctl render of a YAML text: a summary per policy and, with `envoy`, the Envoy configuration. */
export function renderManifests(text: string, options: { policy?: string; envoy?: boolean } = {}): Rendering {
  let objects = parseManifests(text);
  const validation = validateManifests(text);
  if (options.policy !== undefined) {
    const key = options.policy.includes("/") ? options.policy : `default/${options.policy}`;
    const policies = objects.filter((o) => (o as { kind?: unknown })?.kind === "FallbackPolicy");
    const keep = policies.filter((o) => describeObject(o) === `FallbackPolicy ${key}`);
    if (!keep.length) {
      throw new ToolError(
        `policy: no FallbackPolicy ${key} in the input; it holds ${policies.map((o) => describeObject(o).replace(/^FallbackPolicy /, "")).join(", ") || "none"}`,
        [{ field: "policy", message: `no FallbackPolicy ${key}` }],
      );
    }
    objects = objects.filter((o) => !policies.includes(o) || keep.includes(o));
  }
  const keys = new Set(
    objects
      .filter((o) => (o as { kind?: unknown })?.kind === "FallbackPolicy")
      .map((o) => describeObject(o).replace(/^FallbackPolicy /, "")),
  );
  const problems = validation.policies.filter((p) => !p.valid && keys.has(p.policy));
  // As fallbackctl render: input with an invalid policy renders nothing.
  if (problems.length) {
    const errors = problems.flatMap((p) => p.errors);
    throw new ToolError(
      `${count(problems.length, "invalid FallbackPolicy", "invalid FallbackPolicies")}, nothing rendered:\n${errors.map((e) => `${e.object}: ${e.field ? `${e.field}: ` : ""}${e.message}`).join("\n")}`,
      errors,
    );
  }
  const { views, snapshot } = viewPolicies(objects, { offline: true });
  const output = compile(snapshot, defaultOptions);
  const rendering: Rendering = {
    policies: views
      .map((v) => summarize(v, output))
      .sort((a, b) => (a.policy < b.policy ? -1 : a.policy > b.policy ? 1 : 0)),
  };
  if (options.envoy) {
    // A credential never leaves through a tool: the SDS secrets are named, their values withheld.
    const valueOf = (type: string, r: { name: string; value(): object }) =>
      type === "secret"
        ? { name: r.name, withheld: "a backend's credential: Envoy gets it over SDS; it is never shown" }
        : r.value();
    const resources = Object.fromEntries(
      RESOURCE_TYPES.map((type) => [
        type,
        (output.resources[type] ?? []).map((r) => ({ name: r.name, value: valueOf(type, r) })),
      ]),
    );
    rendering.envoy = { bootstrap: renderBootstrap(output.resources, defaultOptions), resources };
  }
  return rendering;
}

function summarize(view: PolicyView, output: CompileOutput): PolicySummary {
  const result = output.results.find((r) => r.key === view.key && !r.errors.length);
  const ready = result?.conditions.find((c) => c.type === "Ready");
  const { spec } = view.policy;
  const members = view.backends.filter((b) => b.cluster);
  return {
    policy: view.key,
    ready: ready ? { status: ready.status, reason: ready.reason, message: ready.message } : null,
    conditions: result?.conditions ?? [],
    target: view.backends[0]!.description,
    chain: view.backends.map((b) => ({
      position: b.position,
      name: b.name,
      kind: b.kind,
      description: b.description,
      drained: b.drained,
      ...(b.cluster ? { cluster: b.cluster } : {}),
      ...(b.hosts !== undefined ? { hosts: b.hosts } : {}),
      ...(b.assumption ? { assumption: b.assumption } : {}),
    })),
    retry: {
      attempts: spec.retry.attempts,
      triesPerRequest: spec.retry.attempts + 1,
      perTryTimeout: spec.retry.perTryTimeout,
      retryOn: spec.retry.retryOn,
      retriableStatusCodes: spec.retry.retriableStatusCodes ?? [],
      backoff: { baseInterval: spec.retry.backoff.baseInterval, maxInterval: spec.retry.backoff.maxInterval },
      fallbackOnRetry: spec.retry.fallbackOnRetry,
      ...(spec.retry.budget ? { budget: spec.retry.budget } : {}),
    },
    timeouts: { request: spec.timeouts.request, connect: spec.timeouts.connect, idle: spec.timeouts.idle },
    outlierDetection: { ...spec.outlierDetection },
    circuitBreaker: { ...spec.circuitBreaker },
    ...(spec.healthCheck ? { healthCheck: { ...spec.healthCheck } } : {}),
    drain: spec.drain ?? [],
    envoy: { aggregateCluster: keyOf(view.policy), memberClusters: members.map((b) => b.cluster!) },
  };
}

export function describeRendering(r: Rendering): string {
  const lines: string[] = [];
  for (const p of r.policies) {
    lines.push(`FallbackPolicy ${p.policy}${p.ready ? `: Ready=${p.ready.status} (${p.ready.reason})` : ""}`);
    for (const b of p.chain)
      lines.push(
        `  ${b.position === 0 ? "primary " : `fallback ${b.position}`}: ${b.name}: ${b.description}${b.drained ? " (drained)" : ""}${b.cluster ? ` [cluster ${b.cluster}]` : ""}`,
      );
    const r = p.retry;
    lines.push(
      `  retry: ${count(r.triesPerRequest, "try", "tries")} per request, ${r.perTryTimeout} each, on ${r.retryOn.join(", ") || "nothing"}${r.retriableStatusCodes.length ? ` (codes ${r.retriableStatusCodes.join(", ")})` : ""}, back-off ${r.backoff.baseInterval}..${r.backoff.maxInterval}, ${r.fallbackOnRetry ? "each retry to the next backend" : "retries to the same backend"}${r.budget ? `, budget ${r.budget.percent}% (min ${r.budget.minConcurrency})` : ""}`,
    );
    lines.push(`  timeouts: request ${p.timeouts.request}, connect ${p.timeouts.connect}, idle ${p.timeouts.idle}`);
    const od = p.outlierDetection as Record<string, string | number | boolean>;
    lines.push(
      `  ejection: after ${od.consecutive5xx} 5xx or ${od.consecutiveGatewayErrors} gateway errors in a row, for ${od.baseEjectionTime} (up to ${od.maxEjectionTime}), checked every ${od.interval}, at most ${od.maxEjectionPercent}% of hosts`,
    );
    if (p.healthCheck) lines.push(`  health checks: GET ${p.healthCheck.path} every ${p.healthCheck.interval}`);
    for (const b of p.chain) if (b.assumption) lines.push(`  note: ${b.assumption}`);
  }
  if (!r.policies.length) lines.push("No FallbackPolicy in the input.");
  if (r.envoy) {
    const counts = Object.entries(r.envoy.resources).map(([type, list]) => `${list.length} ${type}`);
    lines.push(
      "",
      `Envoy resources (${counts.join(", ")}); the bootstrap fallbackctl render prints:`,
      "",
      r.envoy.bootstrap,
    );
  }
  return lines.join("\n");
}
