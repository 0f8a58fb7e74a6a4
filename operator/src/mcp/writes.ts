// set_drain and apply_policy: the only tools that change anything, registered only with
// --allow-writes. They touch FallbackPolicies and nothing else, with the caller's own
// kubeconfig (so RBAC and the audit log see the caller), field manager fallbackctl-mcp.
// Each write goes to the API server twice: first as a server-side dry run, whose result is
// returned, then for real only if every dry run passed. The caller's reason is recorded
// on the object (an annotation) and as an Event about it.
import { hostname } from "node:os";
import { API_VERSION, KIND } from "../api/schema.ts";
import { validatePolicy } from "../api/validate.ts";
import { resourcePath, type KubeObject } from "../kopf/client.ts";
import { isConflict, isNotFound } from "../kopf/errors.ts";
import { HttpMethod, PatchStrategy, V1MicroTime } from "../kopf/kube.ts";
import { EVENTS, POLICIES, readPolicy, type Cluster } from "./cluster.ts";
import { apiError, messageOf, ToolError, type Problem } from "./errors.ts";
import { describeObject, parseManifests } from "./manifests.ts";
import { list } from "./words.ts";

export const FIELD_MANAGER = "fallbackctl-mcp";
/** The caller's reason for the last change made through these tools. */
export const REASON_ANNOTATION = "fallback.dev/change-reason";
/** Which tool made it. */
export const CHANGED_BY_ANNOTATION = "fallback.dev/changed-by";

/** What the write tools need: the cluster, and the flag that allows them at all. */
export type WriteAccess = { cluster: Cluster; allowWrites: boolean };

function checkAllowed(access: WriteAccess, tool: string): void {
  // The tools are not even registered without --allow-writes; this is the second lock.
  if (!access.allowWrites)
    throw new ToolError(`${tool} changes the cluster: start fallbackctl mcp with --allow-writes to use it`);
}

function checkReason(reason: string): string {
  const text = reason.trim();
  if (!text)
    throw new ToolError("reason: required; say why, in a sentence (it is recorded on the policy and in an Event)", [
      { field: "reason", message: "required" },
    ]);
  if (text.length > 1024)
    throw new ToolError("reason: at most 1024 characters", [{ field: "reason", message: "too long" }]);
  return text;
}

export type EventRecord = { recorded: boolean; reason: string; message: string; error?: string };

// ---- set_drain -------------------------------------------------------------------------

export type DrainChange = {
  policy: string;
  before: string[];
  after: string[];
  changed: boolean;
  /** What the API server's dry run of the change returned: spec.drain as it would store it. */
  dryRun: { drain: string[]; generation?: number } | null;
  applied: { generation?: number; resourceVersion?: string } | null;
  event: EventRecord | null;
};

/**
 * Sets spec.drain of a policy to exactly `backends` ([] undrains every backend). A merge
 * patch, not a server-side apply: spec.drain is a set-typed list, and an apply can only add
 * to the names other field managers (kubectl patch, a GitOps tool) put there, never take
 * theirs out. The read's resourceVersion goes with it, so a change in between is not lost.
 */
export async function setDrain(
  access: WriteAccess,
  args: { namespace: string; name: string; backends: string[]; reason: string },
): Promise<DrainChange> {
  checkAllowed(access, "set_drain");
  const reason = checkReason(args.reason);
  const { cluster } = access;
  const key = `${args.namespace}/${args.name}`;
  const object = `FallbackPolicy ${key}`;
  for (let attempt = 1; ; attempt++) {
    const current = await readPolicy(cluster, args.namespace, args.name);
    const names = backendNames(current.spec);
    const wanted: string[] = [];
    args.backends.forEach((name, i) => {
      const field = `backends[${i}]`;
      if (name === "static" && !names.includes("static"))
        throw new ToolError(
          `${field}: the static answer cannot be drained: it is what clients get when every backend is down or drained`,
          [{ object, field, message: "the static answer cannot be drained" }],
        );
      if (!names.includes(name))
        throw new ToolError(
          `${field}: ${JSON.stringify(name)} is not a backend of ${object}; its backends are ${list(names)}`,
          [{ object, field, message: "not a backend of the policy" }],
        );
      if (!wanted.includes(name)) wanted.push(name);
    });
    const before: string[] = Array.isArray(current.spec?.drain) ? current.spec.drain : [];
    if (sameSet(before, wanted))
      return { policy: key, before, after: before, changed: false, dryRun: null, applied: null, event: null };

    const patch = {
      metadata: {
        resourceVersion: current.metadata.resourceVersion,
        annotations: { [REASON_ANNOTATION]: reason, [CHANGED_BY_ANNOTATION]: `${FIELD_MANAGER}/set_drain` },
      },
      spec: { drain: wanted.length ? wanted : null },
    };
    const send = (dryRun: boolean) =>
      cluster.client.request<KubeObject & { spec?: any }>(
        HttpMethod.PATCH,
        resourcePath(POLICIES, args.namespace, args.name),
        {
          body: patch,
          contentType: PatchStrategy.MergePatch,
          query: { fieldManager: FIELD_MANAGER, ...(dryRun ? { dryRun: "All" } : {}) },
        },
      );
    try {
      const tried = await send(true);
      const dryRun = {
        drain: Array.isArray(tried.spec?.drain) ? tried.spec.drain : [],
        ...(tried.metadata.generation !== undefined ? { generation: tried.metadata.generation } : {}),
      };
      const written = await send(false);
      const message = `spec.drain ${wanted.length ? `set to [${wanted.join(", ")}]` : "cleared"} (was [${before.join(", ")}]) by ${FIELD_MANAGER}: ${reason}`;
      const event = await recordEvent(cluster, written, "DrainChanged", message);
      return {
        policy: key,
        before,
        after: wanted,
        changed: true,
        dryRun,
        applied: { generation: written.metadata.generation, resourceVersion: written.metadata.resourceVersion },
        event,
      };
    } catch (error) {
      // Someone changed the policy between our read and write: read it again.
      if (isConflict(error) && attempt < 3) continue;
      throw apiError(object, error);
    }
  }
}

/** The names spec.drain may hold: the target, service fallbacks, external hosts. */
function backendNames(spec: any): string[] {
  const names = [spec?.targetRef?.name];
  for (const f of spec?.fallbacks ?? []) names.push(f?.service?.name ?? f?.external?.host);
  return [...new Set(names.filter((n): n is string => typeof n === "string"))];
}

const sameSet = (a: string[], b: string[]) => a.length === b.length && a.every((x) => b.includes(x));

export function describeDrain(d: DrainChange): string {
  if (!d.changed) return `FallbackPolicy ${d.policy}: spec.drain is already [${d.after.join(", ")}]; nothing written.`;
  return [
    `FallbackPolicy ${d.policy}: spec.drain [${d.before.join(", ")}] -> [${d.after.join(", ")}].`,
    `Dry run: accepted by the API server (spec.drain would be [${d.dryRun?.drain.join(", ") ?? ""}]).`,
    `Applied: generation ${d.applied?.generation ?? "?"}; the operator sends the change to Envoy (get_policy shows when status.backends[].drained follows).`,
    eventLine(d.event),
  ].join("\n");
}

const eventLine = (e: EventRecord | null) =>
  e
    ? e.recorded
      ? `Event ${e.reason}: ${e.message}`
      : `The Event could not be recorded (${e.error}); the reason is in the ${REASON_ANNOTATION} annotation.`
    : "";

// ---- apply_policy ----------------------------------------------------------------------

export type AppliedPolicy = {
  policy: string;
  created: boolean;
  /** Fields of spec the apply changes, from the dry run against the stored object (none listed for a new policy). */
  changes: { field: string; from: unknown; to: unknown }[];
  dryRun: { spec: unknown; generation?: number };
  applied: { generation?: number; resourceVersion?: string } | null;
  event: EventRecord | null;
};

/** Server-side apply of the FallbackPolicies in `yaml`: every one dry-run first, then all of them for real. */
export async function applyPolicies(
  access: WriteAccess,
  args: { yaml: string; reason: string; force?: boolean },
): Promise<{ policies: AppliedPolicy[] }> {
  checkAllowed(access, "apply_policy");
  const reason = checkReason(args.reason);
  const { cluster } = access;
  const objects = parseManifests(args.yaml);
  if (!objects.length) throw new ToolError("yaml: no object to apply", [{ field: "yaml", message: "no object" }]);
  const problems: Problem[] = [];
  const policies: KubeObject[] = [];
  objects.forEach((object, i) => {
    const { apiVersion, kind } = (object ?? {}) as { apiVersion?: unknown; kind?: unknown };
    if (kind !== KIND || apiVersion !== API_VERSION) {
      problems.push({
        object: describeObject(object),
        field: `yaml document ${i + 1}`,
        message: `apply_policy writes ${KIND} ${API_VERSION} objects only`,
      });
      return;
    }
    const meta = ((object as { metadata?: Record<string, unknown> }).metadata ?? {}) as Record<string, unknown>;
    const namespace = typeof meta.namespace === "string" && meta.namespace ? meta.namespace : cluster.namespace;
    const policy = applyConfiguration(object as KubeObject, namespace, reason);
    const validated = validatePolicy(policy);
    if (!validated.ok)
      for (const e of validated.errors)
        problems.push({ object: describeObject(policy), field: e.path, message: e.message });
    policies.push(policy);
  });
  if (problems.length) {
    throw new ToolError(
      `nothing applied:\n${problems.map((p) => `${p.object}: ${p.field}: ${p.message}`).join("\n")}`,
      problems,
    );
  }
  const keys = policies.map((p) => `${p.metadata.namespace}/${p.metadata.name}`);
  const twice = keys.find((k, i) => keys.indexOf(k) !== i);
  if (twice)
    throw new ToolError(`yaml: FallbackPolicy ${twice} is there twice; apply one object per policy`, [
      { object: `FallbackPolicy ${twice}`, message: "twice in the input" },
    ]);

  const send = (policy: KubeObject, dryRun: boolean, force: boolean) =>
    cluster.client.request<KubeObject & { spec?: any }>(
      HttpMethod.PATCH,
      resourcePath(POLICIES, policy.metadata.namespace, policy.metadata.name),
      {
        body: policy,
        contentType: PatchStrategy.ServerSideApply,
        query: { fieldManager: FIELD_MANAGER, ...(force ? { force: true } : {}), ...(dryRun ? { dryRun: "All" } : {}) },
      },
    );
  // The reason annotations are also written by set_drain (a patch, so another entry of the
  // same manager): a conflict on them alone is ours to take over; any other is the caller's.
  const forced = new Set<KubeObject>();
  const apply = async (policy: KubeObject, dryRun: boolean) => {
    try {
      return await send(policy, dryRun, args.force === true || forced.has(policy));
    } catch (error) {
      const conflicts = conflictsOf(error);
      if (!conflicts || !conflicts.every((c) => OWN_FIELDS.includes(c.field))) throw error;
      forced.add(policy);
      return send(policy, dryRun, true);
    }
  };

  // Every dry run first: one that fails means nothing is written.
  const planned: {
    policy: KubeObject;
    before: (KubeObject & { spec?: any }) | undefined;
    dry: KubeObject & { spec?: any };
  }[] = [];
  for (const policy of policies) {
    const name = `FallbackPolicy ${policy.metadata.namespace}/${policy.metadata.name}`;
    let before: (KubeObject & { spec?: any }) | undefined;
    try {
      before = await cluster.client.get(POLICIES, policy.metadata.namespace, policy.metadata.name);
    } catch (error) {
      if (!isNotFound(error)) throw apiError(name, error);
    }
    try {
      planned.push({ policy, before, dry: await apply(policy, true) });
    } catch (error) {
      throw dryRunError(name, error, planned.length, policies.length);
    }
  }
  const results: AppliedPolicy[] = [];
  for (const { policy, before, dry } of planned) {
    const key = `${policy.metadata.namespace}/${policy.metadata.name}`;
    let written: KubeObject & { spec?: any };
    try {
      written = await apply(policy, false);
    } catch (error) {
      const done = results.map((r) => r.policy);
      throw new ToolError(
        `FallbackPolicy ${key}: the dry run passed, the apply did not: ${messageOf(error)}${done.length ? ` (already applied: ${done.join(", ")})` : ""}`,
        [{ object: `FallbackPolicy ${key}`, message: messageOf(error) }],
      );
    }
    const changes = before ? diff(before.spec ?? {}, dry.spec ?? {}, "spec") : [];
    const what = !before
      ? ""
      : changes.length
        ? ` (${changes.length} field${changes.length === 1 ? "" : "s"} of spec changed: ${changes
            .slice(0, 5)
            .map((c) => c.field)
            .join(", ")}${changes.length > 5 ? ", ..." : ""})`
        : " (spec unchanged)";
    const message = `${before ? "Applied" : "Created"} by ${FIELD_MANAGER}${what}: ${reason}`;
    const event = await recordEvent(cluster, written, "PolicyApplied", message);
    results.push({
      policy: key,
      created: !before,
      changes,
      dryRun: {
        spec: dry.spec,
        ...(dry.metadata.generation !== undefined ? { generation: dry.metadata.generation } : {}),
      },
      applied: { generation: written.metadata.generation, resourceVersion: written.metadata.resourceVersion },
      event,
    });
  }
  return { policies: results };
}

/** The object as an apply configuration: what the caller wrote, without what the server owns, with the reason. */
function applyConfiguration(object: KubeObject, namespace: string, reason: string): KubeObject {
  const {
    status: _status,
    metadata = {} as KubeObject["metadata"],
    ...rest
  } = object as KubeObject & { status?: unknown };
  const {
    resourceVersion: _rv,
    uid: _uid,
    generation: _g,
    creationTimestamp: _c,
    managedFields: _m,
    selfLink: _s,
    deletionTimestamp: _d,
    ...meta
  } = metadata as Record<string, unknown>;
  const annotations = {
    ...((meta.annotations as Record<string, string> | undefined) ?? {}),
    [REASON_ANNOTATION]: reason,
    [CHANGED_BY_ANNOTATION]: `${FIELD_MANAGER}/apply_policy`,
  };
  return {
    ...rest,
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { ...meta, namespace, annotations } as unknown as KubeObject["metadata"],
  };
}

const OWN_FIELDS = [`.metadata.annotations.${REASON_ANNOTATION}`, `.metadata.annotations.${CHANGED_BY_ANNOTATION}`];

type FieldConflict = { field: string; manager: string };

/** The fields a server-side apply conflicts on, and who owns each; undefined for any other error. */
function conflictsOf(error: unknown): FieldConflict[] | undefined {
  if (!isConflict(error)) return undefined;
  type Cause = { reason?: string; type?: string; field?: string; message?: string };
  const causes = ((error as { body?: { details?: { causes?: Cause[] } } }).body?.details?.causes ?? []).filter(
    (c) => (c.reason ?? c.type) === "FieldManagerConflict",
  );
  if (!causes.length) return undefined;
  return causes.map((c) => ({
    field: c.field ?? "",
    manager: /conflict with "([^"]+)"/.exec(c.message ?? "")?.[1] ?? "another field manager",
  }));
}

function dryRunError(name: string, error: unknown, passed: number, total: number): ToolError {
  const tail = ` The dry run failed${total > 1 ? ` (${passed} of ${total} had passed)` : ""}: nothing applied.`;
  const conflicts = conflictsOf(error)?.filter((c) => !OWN_FIELDS.includes(c.field));
  if (conflicts?.length) {
    const owned = conflicts.map((c) => `${c.field.replace(/^\./, "")} (owned by ${c.manager})`);
    const message = `${name}: Conflict (409): ${owned.join(", ")} would change, and ${conflicts.length === 1 ? "that field belongs" : "those fields belong"} to another field manager: set force to take ${conflicts.length === 1 ? "it" : "them"} over, or change ${conflicts.length === 1 ? "it" : "them"} with the tool that owns ${conflicts.length === 1 ? "it" : "them"}.`;
    return new ToolError(
      `${message}${tail}`,
      conflicts.map((c) => ({ object: name, field: c.field.replace(/^\./, ""), message: `owned by ${c.manager}` })),
    );
  }
  const e = apiError(name, error);
  return new ToolError(`${e.message.replace(/\.?$/, ".")}${tail}`, e.problems);
}

/** The fields of `to` that differ from `from`, as paths. */
function diff(
  from: unknown,
  to: unknown,
  path: string,
  out: { field: string; from: unknown; to: unknown }[] = [],
): { field: string; from: unknown; to: unknown }[] {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  if (isObject(from) && isObject(to)) {
    for (const key of new Set([...Object.keys(from), ...Object.keys(to)]))
      diff(from[key], to[key], `${path}.${key}`, out);
  } else if (JSON.stringify(from) !== JSON.stringify(to)) {
    out.push({ field: path, from: from ?? null, to: to ?? null });
  }
  return out;
}

export function describeApply(r: { policies: AppliedPolicy[] }): string {
  return r.policies
    .map((p) =>
      [
        `FallbackPolicy ${p.policy}: ${p.created ? "created" : "applied"} (field manager ${FIELD_MANAGER}), generation ${p.applied?.generation ?? "?"}.`,
        `Dry run first: accepted; ${p.created ? "a new policy" : p.changes.length ? `it changes ${p.changes.map((c) => `${c.field} ${JSON.stringify(c.from)} -> ${JSON.stringify(c.to)}`).join("; ")}` : "spec unchanged"}.`,
        eventLine(p.event),
      ]
        .filter(Boolean)
        .join("\n"),
    )
    .join("\n\n");
}

// ---- events ----------------------------------------------------------------------------

/** A Normal Event about the policy; best effort: a write that went through is not undone for it. */
async function recordEvent(
  cluster: Cluster,
  policy: KubeObject,
  reason: string,
  message: string,
): Promise<EventRecord> {
  const namespace = policy.metadata.namespace ?? "default";
  const note = message.length > 1024 ? `${message.slice(0, 1021)}...` : message;
  try {
    await cluster.client.create(EVENTS, {
      metadata: {
        name: `${policy.metadata.name}.${Date.now().toString(16)}${Math.random().toString(16).slice(2, 8)}`,
        namespace,
      },
      eventTime: new V1MicroTime(),
      type: "Normal",
      reason,
      action: reason,
      note,
      reportingController: `fallback.dev/${FIELD_MANAGER}`,
      reportingInstance: `${FIELD_MANAGER}-${hostname()}`.slice(0, 128),
      regarding: {
        apiVersion: API_VERSION,
        kind: KIND,
        name: policy.metadata.name,
        namespace,
        uid: policy.metadata.uid,
        resourceVersion: policy.metadata.resourceVersion,
      },
    });
    return { recorded: true, reason, message: note };
  } catch (error) {
    return { recorded: false, reason, message: note, error: messageOf(error) };
  }
}
