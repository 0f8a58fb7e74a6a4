// compile(snapshot) -> Envoy resources + a result per policy. Pure: no network, no clock.
// The operator and fallbackctl both call this one function.
//
//   validate each policy -> settle conflicts (oldest wins) -> resolve references -> IR
//   -> assign host names -> Envoy clusters and listeners
import { createHash } from "node:crypto";
import { formatError, validatePolicy } from "../api/validate.ts";
import type { FallbackPolicy } from "../api/schema.ts";
import { policyClusters } from "./envoy/clusters.ts";
import { httpListener } from "./envoy/listeners.ts";
import type { Resources } from "./envoy/types.ts";
import type { PolicyIR } from "./ir.ts";
import { indexSnapshot, resolvePolicy } from "./resolve.ts";
import { policyConditions, type PolicyResult } from "./results.ts";
import { defaultOptions, keyOf, namespaceOf, type CompileOptions, type Snapshot } from "./snapshot.ts";

export type CompileOutput = { resources: Resources; results: PolicyResult[] };

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

// The operator compiles the same cached objects on every sync (an update arrives as a new
// object), so each object is validated and defaulted once. Inputs are never modified.
const validations = new WeakMap<object, ReturnType<typeof validatePolicy>>();
function validateOnce(object: unknown): ReturnType<typeof validatePolicy> {
  if (typeof object !== "object" || object === null) return validatePolicy(object);
  let result = validations.get(object);
  if (!result) validations.set(object, (result = validatePolicy(object)));
  return result;
}

export function compile(snapshot: Snapshot, options: CompileOptions = defaultOptions): CompileOutput {
  const index = indexSnapshot(snapshot);
  const results: PolicyResult[] = [];
  const valid: FallbackPolicy[] = [];

  for (const object of snapshot.policies) {
    const validated = validateOnce(object);
    if (validated.ok) {
      valid.push(validated.policy);
      continue;
    }
    const errors = validated.errors.map((e) => formatError(object, e));
    const { metadata, spec } = (object ?? {}) as { metadata?: any; spec?: any };
    results.push({
      key: `${metadata?.namespace ?? "default"}/${metadata?.name ?? "<unnamed>"}`,
      generation: metadata?.generation,
      fallbackCount: Array.isArray(spec?.fallbacks) ? spec.fallbacks.length : 0,
      errors,
      conditions: policyConditions({ accepted: false, reason: "Invalid", message: errors.join("; ") }, [], false),
      backends: [],
    });
  }

  const programmed: { ir: PolicyIR; policy: FallbackPolicy; result: PolicyResult }[] = [];
  for (const [policy, owner] of settleConflicts(valid)) {
    const base = { key: keyOf(policy), generation: policy.metadata.generation, fallbackCount: policy.spec.fallbacks.length, errors: [] };
    if (owner) {
      const message = `FallbackPolicy ${keyOf(owner)} already governs Service ${targetKey(policy)}; the oldest policy wins.`;
      const conditions = policyConditions({ accepted: false, reason: "Conflicted", message }, [], false);
      results.push({ ...base, conditions, backends: [] });
      continue;
    }
    const { ir, backends, problems, targetResolved } = resolvePolicy(policy, index, options);
    const result: PolicyResult = { ...base, conditions: policyConditions({ accepted: true }, problems, targetResolved), backends };
    if (targetResolved) programmed.push({ ir, policy, result });
    results.push(result);
  }

  programmed.sort((a, b) => byString(a.ir.key, b.ir.key));
  assignDomains(programmed, options.clusterDomain);
  // The IR decides everything Envoy does for a policy, so its hash changes exactly when
  // the policy's part of the config does (and not when another policy's part does). It is
  // worked out when first read: the operator reads it for status, fallbackctl never does.
  for (const { ir, result } of programmed) {
    let hash: string | undefined;
    Object.defineProperty(result, "configHash", { enumerable: true, get: () => (hash ??= `sha256:${sha256(JSON.stringify(ir))}`) });
  }
  results.sort((a, b) => byString(a.key, b.key));
  return { resources: envoyResources(programmed.map((p) => p.ir), options), results };
}

const targetKey = (p: FallbackPolicy) => `${namespaceOf(p)}/${p.spec.targetRef.name}:${p.spec.targetRef.port}`;

/** Pairs each policy with the policy that owns its target instead, if any: the oldest wins. */
function settleConflicts(policies: FallbackPolicy[]): [FallbackPolicy, FallbackPolicy | undefined][] {
  const age = (p: FallbackPolicy) => `${p.metadata.creationTimestamp ?? ""}|${keyOf(p)}`;
  const owners = new Map<string, FallbackPolicy>();
  for (const policy of [...policies].sort((a, b) => byString(age(a), age(b)))) {
    if (!owners.has(targetKey(policy))) owners.set(targetKey(policy), policy);
  }
  return policies.map((p) => {
    const owner = owners.get(targetKey(p))!;
    return [p, owner === p ? undefined : owner];
  });
}

/**
 * A policy answers to its Service's DNS names with its port (products:8080, ...). The bare
 * names carry no port, so only one policy per Service may have them: the one on port 80 if
 * there is one, else the lowest port.
 */
function assignDomains(programmed: { ir: PolicyIR; policy: FallbackPolicy }[], clusterDomain: string) {
  const bareNamesPort = new Map<string, number>();
  const serviceOf = (policy: FallbackPolicy) => `${namespaceOf(policy)}/${policy.spec.targetRef.name}`;
  for (const { policy } of programmed) {
    const service = serviceOf(policy);
    const port = policy.spec.targetRef.port;
    const owner = bareNamesPort.get(service);
    if (owner === undefined || (owner !== 80 && (port === 80 || port < owner))) bareNamesPort.set(service, port);
  }
  for (const { ir, policy } of programmed) {
    const namespace = namespaceOf(policy);
    const { name, port } = policy.spec.targetRef;
    const ownsBareNames = bareNamesPort.get(serviceOf(policy)) === port;
    const names = [name, `${name}.${namespace}`, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.${clusterDomain}`];
    ir.domains = names.flatMap((n) => (ownsBareNames ? [n, `${n}:${port}`] : [`${n}:${port}`]));
  }
}

function envoyResources(policies: PolicyIR[], options: CompileOptions): Resources {
  return {
    clusters: {
      *[Symbol.iterator]() {
        for (const policy of policies) yield* policyClusters(policy, options.trustedCA);
      },
    },
    listeners: [httpListener(policies, options.listen)],
  };
}
