// compile(snapshot) -> Envoy resources + a result per policy. Pure: no network, no clock.
// The operator (through a Compiler it keeps) and fallbackctl both take this one path.
//
//   validate each policy -> settle conflicts (oldest wins) -> resolve references -> IR
//   -> assign host names -> Envoy clusters and listeners
import { createHash } from "node:crypto";
import { formatError, validatePolicy } from "../api/validate.ts";
import type { FallbackPolicy } from "../api/schema.ts";
import { ResourceMemo, envoyResources } from "./envoy/resources.ts";
import type { Resources } from "./envoy/types.ts";
import type { PolicyIR } from "./ir.ts";
import { indexSnapshot, resolvePolicy, type Resolution, type SnapshotIndex } from "./resolve.ts";
import { policyConditions, type PolicyResult } from "./results.ts";
import { defaultOptions, keyOf, namespaceOf, type CompileOptions, type Snapshot } from "./snapshot.ts";

export type CompileOutput = { resources: Resources; results: PolicyResult[] };

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** One compile, with nothing remembered (fallbackctl: every object is new anyway). */
export const compile = (snapshot: Snapshot, options: CompileOptions = defaultOptions): CompileOutput => new Compiler(options).compile(snapshot);

/**
 * Compiles snapshots with the same options, remembering per input object what it made of
 * it: the operator compiles mostly the same cached objects on every sync (an update arrives
 * as a new object), so an unchanged policy is validated, resolved and hashed once, and its
 * result and IR are the very objects of the last compile. Inputs are never modified.
 */
export class Compiler {
  readonly options: CompileOptions;
  private readonly validations = new WeakMap<object, ReturnType<typeof validatePolicy>>();
  private readonly resolutions = new WeakMap<FallbackPolicy, Resolution>();
  private readonly programmedResults = new WeakMap<Resolution, { ir: PolicyIR; result: PolicyResult }>();
  private readonly configHashes = new WeakMap<PolicyIR, string>();
  private readonly made = new ResourceMemo();

  constructor(options: CompileOptions = defaultOptions) {
    this.options = options;
  }

  compile(snapshot: Snapshot): CompileOutput {
    const index = indexSnapshot(snapshot);
    const results: PolicyResult[] = [];
    const valid: FallbackPolicy[] = [];

    for (const object of snapshot.policies) {
      const validated = this.validate(object);
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

    const programmed: Programmed[] = [];
    for (const [policy, owner] of settleConflicts(valid)) {
      const base = { key: keyOf(policy), generation: policy.metadata.generation, fallbackCount: policy.spec.fallbacks.length, errors: [] };
      if (owner) {
        const message = `FallbackPolicy ${keyOf(owner)} already governs Service ${targetKey(policy)}; the oldest policy wins.`;
        const conditions = policyConditions({ accepted: false, reason: "Conflicted", message }, [], false);
        results.push({ ...base, conditions, backends: [] });
        continue;
      }
      const resolution = this.resolve(policy, index);
      const { ir, backends, problems, targetResolved } = resolution;
      if (targetResolved) programmed.push({ ir, policy, resolution, at: results.length });
      results.push({ ...base, conditions: policyConditions({ accepted: true }, problems, targetResolved), backends });
    }

    programmed.sort((a, b) => byString(a.ir.key, b.ir.key));
    this.assignDomains(programmed);
    for (const { ir, resolution, at } of programmed) results[at] = this.programmedResult(resolution, ir, results[at]!);
    results.sort((a, b) => byString(a.key, b.key));
    return { resources: envoyResources(programmed.map((p) => p.ir), this.options, this.made), results };
  }

  /** Validated and defaulted once per object. */
  private validate(object: unknown): ReturnType<typeof validatePolicy> {
    if (typeof object !== "object" || object === null) return validatePolicy(object);
    let result = this.validations.get(object);
    if (!result) this.validations.set(object, (result = validatePolicy(object)));
    return result;
  }

  /**
   * A policy whose (validated) object, Services and EndpointSlices are the very same
   * objects resolves to the same IR object as before, which tells the sinks that nothing
   * made from it changed.
   */
  private resolve(policy: FallbackPolicy, index: SnapshotIndex): Resolution {
    const last = this.resolutions.get(policy);
    if (last && sameInputs(last, index)) return last;
    const resolution = resolvePolicy(policy, index, this.options);
    this.resolutions.set(policy, resolution);
    return resolution;
  }

  /**
   * A programmed policy's result is the same object from one compile to the next while its
   * resolution and final IR are, so the operator can tell "nothing new for this policy" by
   * identity, without working out its status again.
   */
  private programmedResult(resolution: Resolution, ir: PolicyIR, fresh: PolicyResult): PolicyResult {
    const last = this.programmedResults.get(resolution);
    if (last?.ir === ir) return last.result;
    // The IR decides everything Envoy does for a policy, so its hash changes exactly when
    // the policy's part of the config does (and not when another policy's part does). It is
    // worked out when first read: the operator reads it for status, fallbackctl never does.
    Object.defineProperty(fresh, "configHash", { enumerable: true, get: () => this.configHashOf(ir) });
    this.programmedResults.set(resolution, { ir, result: fresh });
    return fresh;
  }

  private configHashOf(ir: PolicyIR): string {
    let hash = this.configHashes.get(ir);
    if (!hash) this.configHashes.set(ir, (hash = `sha256:${sha256(JSON.stringify(ir))}`));
    return hash;
  }

  /**
   * A policy answers to its Service's DNS names with its port (products:8080, ...). The bare
   * names carry no port, so only one policy per Service may have them: the one on port 80 if
   * there is one, else the lowest port. They carry no namespace either: a name that Services
   * of several namespaces have programmed policies for goes to none of them (Envoy would
   * reject the routes for the duplicate, and no rule could say whose it is), and clients
   * there say name.namespace.
   */
  private assignDomains(programmed: Programmed[]) {
    const bareNamesPort = new Map<string, number>();
    const namespacesOf = new Map<string, Set<string>>();
    const serviceOf = (policy: FallbackPolicy) => `${namespaceOf(policy)}/${policy.spec.targetRef.name}`;
    for (const { policy } of programmed) {
      const service = serviceOf(policy);
      const port = policy.spec.targetRef.port;
      const owner = bareNamesPort.get(service);
      if (owner === undefined || (owner !== 80 && (port === 80 || port < owner))) bareNamesPort.set(service, port);
      const name = policy.spec.targetRef.name;
      const namespaces = namespacesOf.get(name);
      if (namespaces) namespaces.add(namespaceOf(policy));
      else namespacesOf.set(name, new Set([namespaceOf(policy)]));
    }
    for (const entry of programmed) {
      const { ir, policy } = entry;
      const namespace = namespaceOf(policy);
      const { name, port } = policy.spec.targetRef;
      const ownsBareNames = bareNamesPort.get(serviceOf(policy)) === port;
      const unique = namespacesOf.get(name)!.size === 1;
      const names = [name, `${name}.${namespace}`, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.${this.options.clusterDomain}`];
      const domains = names.flatMap((n, i) => (i === 0 && !unique ? [] : ownsBareNames ? [n, `${n}:${port}`] : [`${n}:${port}`]));
      if (ir.domains.length === 0) ir.domains = domains; // a new IR
      else if (domains.length !== ir.domains.length || domains.some((d, i) => d !== ir.domains[i])) {
        // A reused IR is never changed (what was made from it would go stale): replace it.
        entry.ir = { ...ir, domains };
        entry.resolution = { ...entry.resolution, ir: entry.ir };
        this.resolutions.set(policy, entry.resolution);
      }
    }
  }
}

type Programmed = { ir: PolicyIR; policy: FallbackPolicy; resolution: Resolution; at: number };

/** Whether the Services and slices a resolution read are still the very objects in the index. */
function sameInputs({ inputs }: Resolution, index: SnapshotIndex): boolean {
  return inputs.every(({ key, service, slices }) => {
    const now = index.slicesByService.get(key);
    return index.services.get(key) === service && (now === slices || (!!now && !!slices && now.length === slices.length && now.every((s, i) => s === slices[i])));
  });
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
