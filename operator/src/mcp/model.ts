// What the explaining and simulating tools read of a policy: the compiler's own view of it.
// The objects go through compile() (the path fallbackctl and the operator take) for the
// policy's result, and through validatePolicy and resolvePolicy (the steps compile takes
// for each policy) for its IR: the backends in order with their endpoints, and the retry,
// ejection, limit and timeout numbers in milliseconds.
import type { FallbackPolicy } from "../api/schema.ts";
import { validatePolicy } from "../api/validate.ts";
import { compile } from "../compile/compile.ts";
import type { PolicyIR } from "../compile/ir.ts";
import { indexSnapshot, resolvePolicy } from "../compile/resolve.ts";
import type { PolicyResult } from "../compile/results.ts";
import { backendClusterName } from "../compile/envoy/types.ts";
import { defaultOptions, keyOf, snapshotFromObjects, type Snapshot } from "../compile/snapshot.ts";
import { ToolError } from "./errors.ts";
import { describeObject } from "./manifests.ts";

/** One backend of a policy, primary first, as status.backends names it. */
export type BackendView = {
  /** Service name, external host, or "static". */
  name: string;
  kind: "Service" | "External" | "StaticResponse";
  /** 0 for the primary, then the fallbacks' positions (1-based). */
  position: number;
  /** Its Envoy cluster (ns/name/primary, ns/name/fallback-1, ...); none for the static response. */
  cluster?: string;
  /** Hosts Envoy can send to: ready endpoints; undefined when Envoy resolves a name (one host or more). */
  hosts: number | undefined;
  drained: boolean;
  /** In words: "Service shop/products port 8080, 2 ready endpoints". */
  description: string;
  /** The part of the description after the reference: "2 ready endpoints", "resolved by DNS". */
  state?: string;
  /** What an external backend does to a request on its way: its credential, rewrites. */
  handling?: string[];
  /** Said when the input lacked what this backend refers to, and the tools assume it is there. */
  assumption?: string;
  static?: { status: number; body: string; headers: [string, string][] };
  /** An external backend whose 429 Envoy sees as a 503 (ejectOnRateLimit): retried and counted for outlier detection as one. */
  rateLimitedAs503?: true;
};

export type PolicyView = {
  key: string;
  policy: FallbackPolicy;
  ir: PolicyIR;
  result: PolicyResult | undefined;
  backends: BackendView[];
};

/**
 * Offline, a Service or credential Secret missing from the input is assumed to be there (a
 * repository seldom holds them). In a cluster a missing Service is missing, and Envoy skips
 * that backend; the tools never read Secrets, so whether a credential is missing comes
 * from the policy's status (`secretsMissing`).
 */
export type Mode = { offline: true } | { offline: false; secretsMissing: boolean };

/** The view of every policy in `objects` that is valid. */
export function viewPolicies(
  objects: unknown[],
  mode: Mode,
): { views: PolicyView[]; invalid: { key: string; errors: string[] }[]; snapshot: Snapshot } {
  const { snapshot } = snapshotFromObjects(objects);
  const output = compile(snapshot, defaultOptions);
  const index = indexSnapshot(snapshot);
  const views: PolicyView[] = [];
  const invalid: { key: string; errors: string[] }[] = [];
  for (const object of snapshot.policies) {
    const validated = validatePolicy(object);
    if (!validated.ok) {
      const key = describeObject(object).replace(/^FallbackPolicy /, "");
      invalid.push({
        key,
        errors:
          output.results.find((r) => r.key === key && r.errors.length)?.errors ??
          validated.errors.map((e) => `${e.path}: ${e.message}`),
      });
      continue;
    }
    const policy = validated.policy;
    const key = keyOf(policy);
    const { ir } = resolvePolicy(policy, index, defaultOptions);
    const result = output.results.find((r) => r.key === key && !r.errors.length);
    views.push({ key, policy, ir, result, backends: backendViews(ir, snapshot, mode) });
  }
  return { views, invalid, snapshot };
}

/** The one policy a tool is asked about: `namespace/name`, or the only one in the input. */
export function pickPolicy(objects: unknown[], ref: string | undefined, mode: Mode): PolicyView {
  const { views, invalid } = viewPolicies(objects, mode);
  const all = [...views.map((v) => v.key), ...invalid.map((i) => i.key)];
  if (ref !== undefined) {
    const key = ref.includes("/") ? ref : `default/${ref}`;
    const view = views.find((v) => v.key === key);
    if (view) return view;
    const bad = invalid.find((i) => i.key === key);
    if (bad)
      throw new ToolError(
        `FallbackPolicy ${key} is invalid: ${bad.errors.join("; ")}`,
        bad.errors.map((message) => ({ object: `FallbackPolicy ${key}`, message })),
      );
    throw new ToolError(
      `policy: no FallbackPolicy ${key} in the input${all.length ? `; it holds ${all.join(", ")}` : "; it holds no FallbackPolicy"}`,
      [{ field: "policy", message: `no FallbackPolicy ${key}` }],
    );
  }
  if (all.length === 0)
    throw new ToolError("yaml: the input holds no FallbackPolicy", [{ field: "yaml", message: "no FallbackPolicy" }]);
  if (all.length > 1)
    throw new ToolError(
      `policy: the input holds ${all.length} FallbackPolicies (${all.join(", ")}); say which one as namespace/name`,
      [{ field: "policy", message: "required when the input holds several policies" }],
    );
  if (invalid.length) {
    const bad = invalid[0]!;
    throw new ToolError(
      `FallbackPolicy ${bad.key} is invalid: ${bad.errors.join("; ")}`,
      bad.errors.map((message) => ({ object: `FallbackPolicy ${bad.key}`, message })),
    );
  }
  return views[0]!;
}

function backendViews(ir: PolicyIR, snapshot: Snapshot, mode: Mode): BackendView[] {
  const { offline } = mode;
  const namespace = ir.key.slice(0, ir.key.indexOf("/"));
  const services = new Set(snapshot.services.map((s) => keyOf(s)));
  let member = 0;
  return ir.backends.map((backend, position): BackendView => {
    switch (backend.kind) {
      case "Service": {
        const cluster = backendClusterName(ir.key, member++);
        const known = services.has(`${namespace}/${backend.name}`);
        const ref = `Service ${backend.namespace}/${backend.name} port ${backend.port}`;
        const view = (hosts: number | undefined, state: string | undefined, assumption?: string): BackendView => ({
          name: backend.name,
          kind: "Service",
          position,
          cluster,
          hosts,
          drained: backend.drained,
          description: state ? `${ref}, ${state}` : ref,
          ...(state ? { state } : {}),
          ...(assumption ? { assumption } : {}),
        });
        if (!known)
          return offline
            ? view(undefined, undefined, `${ref} is not in the input: assumed to exist with ready endpoints`)
            : view(0, "not found, so no endpoints");
        if (backend.resolution === "DNS") return view(undefined, `resolved by DNS as ${backend.host}`);
        const n = backend.endpoints.length;
        return view(n, `${n} ready endpoint${n === 1 ? "" : "s"}`);
      }
      case "External": {
        const cluster = backendClusterName(ir.key, member++);
        const ref = `external ${backend.tls ? "https" : "http"}://${backend.host}:${backend.port}`;
        const auth = (backend as { auth?: { secret: string; header: string; prefix: string } | "missing" }).auth;
        const rewrite = (backend as { rewrite?: { pathPrefix?: { from: string; to: string }; model?: string } })
          .rewrite;
        const forward = (backend as { forwardClientCredentials?: boolean }).forwardClientCredentials;
        const ejects = (backend as { ejectOnRateLimit?: true }).ejectOnRateLimit === true;
        const handling: string[] = [];
        if (auth && auth !== "missing") {
          const [, secret, key] = auth.secret.split("/");
          handling.push(
            `sends its own credential (Secret ${secret}, key ${key}) in ${auth.header}${auth.prefix ? ` after "${auth.prefix}"` : ""}`,
          );
        }
        if (rewrite?.pathPrefix)
          handling.push(`rewrites the path prefix ${rewrite.pathPrefix.from} to ${rewrite.pathPrefix.to}`);
        if (rewrite?.model) handling.push(`sets the "model" of JSON request bodies to ${rewrite.model}`);
        if (forward === false)
          handling.push("never gets the client's Authorization, Proxy-Authorization or Cookie headers");
        else if (forward === true) handling.push("gets the client's own credentials (forwardClientCredentials)");
        if (ejects)
          handling.push("its 429 answers count as 503s, so a rate-limited provider is ejected (ejectOnRateLimit)");
        const missing = auth === "missing";
        const left = missing && !offline && mode.secretsMissing;
        return {
          name: backend.host,
          kind: "External",
          position,
          cluster,
          hosts: left ? 0 : undefined,
          drained: backend.drained,
          description: left ? `${ref}, left out: its credential Secret is missing` : ref,
          ...(left ? { state: "left out: its credential Secret is missing" } : {}),
          ...(handling.length ? { handling } : {}),
          ...(ejects ? { rateLimitedAs503: true as const } : {}),
          ...(missing && offline
            ? { assumption: `the credential Secret of ${backend.host} is not in the input: assumed to exist` }
            : {}),
        };
      }
      case "StaticResponse":
        return {
          name: "static",
          kind: "StaticResponse",
          position,
          hosts: undefined,
          drained: false,
          description: `the static answer ${backend.status}${backend.body ? ` ${JSON.stringify(backend.body.length > 80 ? `${backend.body.slice(0, 77)}...` : backend.body)}` : " with an empty body"}`,
          static: { status: backend.status, body: backend.body, headers: backend.headers },
        };
    }
  });
}
