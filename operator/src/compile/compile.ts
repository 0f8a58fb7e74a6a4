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
import { indexSnapshot, resolvePolicy, type Credential, type Resolution, type SnapshotIndex } from "./resolve.ts";
import { policyConditions, type PolicyResult } from "./results.ts";
import {
  SERVICE_NAME_LABEL,
  defaultOptions,
  keyOf,
  namespaceOf,
  type CompileOptions,
  type EndpointSlice,
  type Service,
  type Snapshot,
} from "./snapshot.ts";
import { sameItems } from "./same-items.ts";

export type CompileOutput = { resources: Resources; results: PolicyResult[] };

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** One compile, with nothing remembered (fallbackctl: every object is new anyway). */
export const compile = (snapshot: Snapshot, options: CompileOptions = defaultOptions): CompileOutput =>
  new Compiler(options).compile(snapshot);

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
  private readonly facts = new WeakMap<FallbackPolicy, PolicyFacts>();
  private readonly domainsMade = new WeakMap<
    FallbackPolicy,
    { ownsBareNames: boolean; unique: boolean; domains: string[] }
  >();
  /** The last compile done the whole way, and what it needs to be done again in place. */
  private last:
    | {
        secrets: unknown[];
        credentials: Credential[];
        policies: unknown[];
        services: unknown[];
        endpointSlices: unknown[];
        index: SnapshotIndex;
        results: PolicyResult[];
        resultAt: Map<string, number>;
        irs: PolicyIR[];
        irAt: Map<string, number>;
        programmed: Map<string, FallbackPolicy>;
        /** By Service key, the programmed policies that read it. */
        readers: Map<string, Set<string>>;
        output: CompileOutput;
      }
    | undefined;
  private lastIndex:
    { services: unknown[]; endpointSlices: unknown[]; secrets: unknown[]; index: SnapshotIndex } | undefined;

  constructor(options: CompileOptions = defaultOptions) {
    this.options = options;
  }

  /**
   * The programmed policies' IRs of the last compile, in key order: the stage between
   * resolving and Envoy resources, read back so the golden tests can show it on its own.
   * Not to be modified (later compiles hand the same objects out again).
   */
  get irs(): readonly PolicyIR[] {
    return this.last?.irs ?? [];
  }

  compile(snapshot: Snapshot): CompileOutput {
    const quick = this.inPlace(snapshot);
    if (quick) return quick;
    const index = this.index(snapshot);
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
    const owners = this.settleConflicts(valid);
    for (const policy of valid) {
      const facts = this.factsOf(policy);
      const owner = owners.get(facts.target)!;
      const base = () => ({
        key: facts.key,
        generation: policy.metadata.generation,
        fallbackCount: policy.spec.fallbacks.length,
        errors: [],
      });
      if (owner !== policy) {
        const message = `FallbackPolicy ${this.factsOf(owner).key} already governs Service ${facts.target}; the oldest policy wins.`;
        const conditions = policyConditions({ accepted: false, reason: "Conflicted", message }, [], false);
        results.push({ ...base(), conditions, backends: [] });
        continue;
      }
      const resolution = this.resolve(policy, index);
      const { ir, backends, problems, targetResolved } = resolution;
      if (targetResolved) programmed.push({ ir, policy, resolution, at: results.length });
      // A programmed policy's result is mostly the one of last time (programmedResult).
      results.push(
        targetResolved
          ? (null as unknown as PolicyResult)
          : { ...base(), conditions: policyConditions({ accepted: true }, problems, false), backends },
      );
    }

    programmed.sort((a, b) => byString(a.ir.key, b.ir.key));
    this.assignDomains(programmed);
    for (const { ir, policy, resolution, at } of programmed)
      results[at] = this.programmedResult(policy, resolution, ir);
    results.sort((a, b) => byString(a.key, b.key));
    const irs = programmed.map((p) => p.ir);
    const credentials = programmed.flatMap((p) => p.resolution.credentials);
    const output = { resources: envoyResources(irs, this.options, this.made, credentials), results };
    this.last = {
      secrets: snapshot.secrets ?? [],
      credentials,
      policies: snapshot.policies,
      services: snapshot.services,
      endpointSlices: snapshot.endpointSlices,
      index,
      results,
      resultAt: new Map(results.map((r, i) => [r.key, i])),
      irs,
      irAt: new Map(irs.map((ir, i) => [ir.key, i])),
      programmed: new Map(programmed.map((p) => [p.ir.key, p.policy])),
      readers: readersOf(programmed),
      output,
    };
    return output;
  }

  /**
   * The last compile with the few policies that changed worked out again, when nothing else
   * can have changed for the others: no policy, Service or EndpointSlice added or removed,
   * and each changed policy (or one that reads a changed Service or EndpointSlice) still
   * valid, programmed, on the same target and as old as before, so that no conflict or
   * domain moves. That is what a sync of a large install mostly is, and this way costs a
   * small part of the whole way (docs/benchmarks.md). Undefined sends the compile the whole way.
   */
  private inPlace(snapshot: Snapshot): CompileOutput | undefined {
    const last = this.last;
    if (!last || snapshot.policies.length !== last.policies.length) return undefined;
    // Two policies of one key (files can hold that; the API server cannot) make the maps by
    // key below ambiguous: the whole way tells them apart.
    if (last.resultAt.size !== last.results.length) return undefined;
    // A Secret changed (a credential rotated, most likely): rare enough to compile the whole way.
    if (!sameItems(last.secrets, snapshot.secrets ?? [])) return undefined;
    const touched = this.touchedServices(last, snapshot);
    if (!touched) return undefined;
    const redo = new Map<string, FallbackPolicy | undefined>(); // by key; undefined: read from the snapshot below
    for (const service of touched)
      for (const key of last.readers.get(service) ?? []) redo.set(key, last.programmed.get(key));
    for (let i = 0; i < snapshot.policies.length; i++) {
      if (snapshot.policies[i] === last.policies[i]) continue;
      const validated = this.validate(snapshot.policies[i]);
      if (!validated.ok) return undefined;
      redo.set(this.factsOf(validated.policy).key, validated.policy);
    }
    if (!redo.size && !touched.size) return last.output;
    if (redo.size > 64) return undefined;
    // New lists (the last ones went out with the last output); the maps are the Compiler's
    // own, changed in place (a way back to the whole compile makes them anew).
    const results = [...last.results];
    const irs = [...last.irs];
    const { programmed, readers } = last;
    for (const [key, policy] of redo) {
      const before = last.programmed.get(key);
      if (!policy || !before) return undefined; // it was not programmed: its conflicts may move
      const [was, facts] = [this.factsOf(before), this.factsOf(policy)];
      if (was.target !== facts.target || was.created !== facts.created) return undefined;
      const previous = this.resolutions.get(before);
      const resolution = this.resolve(policy, last.index);
      const flags = this.domainsMade.get(before);
      if (!resolution.targetResolved || !flags) return undefined;
      // Credentials (SDS secrets) are worked out the whole way.
      if (resolution.credentials.length || previous?.credentials.length) return undefined;
      const entry: Programmed = { ir: resolution.ir, policy, resolution, at: 0 };
      this.giveDomains(entry, this.domainsOf(policy, flags.ownsBareNames, flags.unique));
      results[last.resultAt.get(key)!] = this.programmedResult(policy, entry.resolution, entry.ir);
      irs[last.irAt.get(key)!] = entry.ir;
      programmed.set(key, policy);
      unread(readers, key, previous);
      read(readers, key, entry.resolution);
    }
    const output = { resources: envoyResources(irs, this.options, this.made, last.credentials), results };
    this.last = {
      ...last,
      policies: snapshot.policies,
      services: snapshot.services,
      endpointSlices: snapshot.endpointSlices,
      results,
      irs,
      programmed,
      readers,
      output,
    };
    this.lastIndex = {
      services: snapshot.services,
      endpointSlices: snapshot.endpointSlices,
      secrets: last.secrets,
      index: last.index,
    };
    return output;
  }

  /**
   * The Services whose object or EndpointSlices changed since the last compile, with the
   * last index brought up to date; undefined when one was added or removed (or too many changed).
   */
  private touchedServices(last: NonNullable<Compiler["last"]>, snapshot: Snapshot): Set<string> | undefined {
    const touched = new Set<string>();
    const { services, slicesByService } = last.index;
    if (
      snapshot.services.length !== last.services.length ||
      snapshot.endpointSlices.length !== last.endpointSlices.length
    )
      return undefined;
    for (let i = 0; i < snapshot.services.length; i++) {
      const [was, now] = [last.services[i] as Service, snapshot.services[i]!];
      if (was === now) continue;
      const key = keyOf(now);
      if (key !== keyOf(was) || touched.size > 64) return undefined;
      services.set(key, now);
      touched.add(key);
    }
    for (let i = 0; i < snapshot.endpointSlices.length; i++) {
      const [was, now] = [last.endpointSlices[i] as EndpointSlice, snapshot.endpointSlices[i]!];
      if (was === now) continue;
      const [before, after] = [serviceOfSlice(was), serviceOfSlice(now)];
      if (keyOf(now) !== keyOf(was) || before !== after || touched.size > 64) return undefined;
      if (!after) continue;
      // A new list for the Service: resolutions compare lists by identity.
      slicesByService.set(
        after,
        (slicesByService.get(after) ?? []).map((s) => (s === was ? now : s)),
      );
      touched.add(after);
    }
    return touched;
  }

  /** What the passes over every policy read of one, worked out once per validated policy. */
  private factsOf(policy: FallbackPolicy): PolicyFacts {
    let facts = this.facts.get(policy);
    if (!facts) {
      const namespace = namespaceOf(policy);
      const { name, port } = policy.spec.targetRef;
      facts = {
        key: keyOf(policy),
        service: `${namespace}/${name}`,
        target: `${namespace}/${name}:${port}`,
        created: policy.metadata.creationTimestamp ?? "",
      };
      this.facts.set(policy, facts);
    }
    return facts;
  }

  /** The index of Services and EndpointSlices: the last one again while its inputs are the same. */
  private index(snapshot: Snapshot): SnapshotIndex {
    const last = this.lastIndex;
    const secrets = snapshot.secrets ?? [];
    if (
      last &&
      sameItems(last.services, snapshot.services) &&
      sameItems(last.endpointSlices, snapshot.endpointSlices) &&
      sameItems(last.secrets, secrets)
    )
      return last.index;
    const index = indexSnapshot(snapshot);
    this.lastIndex = { services: snapshot.services, endpointSlices: snapshot.endpointSlices, secrets, index };
    return index;
  }

  /** For each target Service port, the policy that governs it: the oldest wins (by creation time, then key). */
  private settleConflicts(policies: FallbackPolicy[]): Map<string, FallbackPolicy> {
    const owners = new Map<string, FallbackPolicy>();
    for (const policy of policies) {
      const facts = this.factsOf(policy);
      const owner = owners.get(facts.target);
      if (!owner) {
        owners.set(facts.target, policy);
        continue;
      }
      const theirs = this.factsOf(owner);
      if (facts.created < theirs.created || (facts.created === theirs.created && facts.key < theirs.key))
        owners.set(facts.target, policy);
    }
    return owners;
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
  private programmedResult(policy: FallbackPolicy, resolution: Resolution, ir: PolicyIR): PolicyResult {
    const last = this.programmedResults.get(resolution);
    if (last?.ir === ir) return last.result;
    const fresh: PolicyResult = {
      key: ir.key,
      generation: policy.metadata.generation,
      fallbackCount: policy.spec.fallbacks.length,
      errors: [],
      conditions: policyConditions({ accepted: true }, resolution.problems, true),
      backends: resolution.backends,
    };
    const credentialed = ir.backends.flatMap((b) =>
      b.kind === "External" && typeof b.auth === "object" ? [b.host] : [],
    );
    if (credentialed.length) fresh.credentialed = credentialed;
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
    for (const { policy } of programmed) {
      const { service } = this.factsOf(policy);
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
      const { name, port } = policy.spec.targetRef;
      const ownsBareNames = bareNamesPort.get(this.factsOf(policy).service) === port;
      const unique = namespacesOf.get(name)!.size === 1;
      this.giveDomains(entry, this.domainsOf(policy, ownsBareNames, unique));
    }
  }

  private giveDomains(entry: Programmed, domains: string[]): void {
    const { ir, policy } = entry;
    if (ir.domains.length === 0)
      ir.domains = domains; // a new IR
    else if (domains !== ir.domains) {
      // A reused IR is never changed (what was made from it would go stale): replace it.
      entry.ir = { ...ir, domains };
      entry.resolution = { ...entry.resolution, ir: entry.ir };
      this.resolutions.set(policy, entry.resolution);
    }
  }

  /** A policy's domains, the very array of last time while the same names are its. */
  private domainsOf(policy: FallbackPolicy, ownsBareNames: boolean, unique: boolean): string[] {
    const last = this.domainsMade.get(policy);
    if (last?.ownsBareNames === ownsBareNames && last.unique === unique) return last.domains;
    const namespace = namespaceOf(policy);
    const { name, port } = policy.spec.targetRef;
    const names = [
      name,
      `${name}.${namespace}`,
      `${name}.${namespace}.svc`,
      `${name}.${namespace}.svc.${this.options.clusterDomain}`,
    ];
    const domains = names.flatMap((n, i) =>
      i === 0 && !unique ? [] : ownsBareNames ? [n, `${n}:${port}`] : [`${n}:${port}`],
    );
    this.domainsMade.set(policy, { ownsBareNames, unique, domains });
    return domains;
  }
}

type Programmed = { ir: PolicyIR; policy: FallbackPolicy; resolution: Resolution; at: number };

/** Whether the Services and slices a resolution read are still the very objects in the index. */
function sameInputs({ inputs }: Resolution, index: SnapshotIndex): boolean {
  return inputs.every(({ key, service, slices, secret, isSecret }) => {
    if (isSecret) return index.secrets.get(key.slice("Secret ".length)) === secret;
    const now = index.slicesByService.get(key);
    return (
      index.services.get(key) === service &&
      (now === slices || (!!now && !!slices && now.length === slices.length && now.every((s, i) => s === slices[i])))
    );
  });
}

/** By Service key, the programmed policies whose resolution read it. */
function readersOf(programmed: Programmed[]): Map<string, Set<string>> {
  const readers = new Map<string, Set<string>>();
  for (const { ir, resolution } of programmed) {
    for (const { key } of resolution.inputs) {
      const set = readers.get(key);
      if (set) set.add(ir.key);
      else readers.set(key, new Set([ir.key]));
    }
  }
  return readers;
}

function read(readers: Map<string, Set<string>>, key: string, resolution: Resolution): void {
  for (const input of resolution.inputs) {
    const set = readers.get(input.key);
    if (set) set.add(key);
    else readers.set(input.key, new Set([key]));
  }
}

function unread(readers: Map<string, Set<string>>, key: string, resolution: Resolution | undefined): void {
  for (const input of resolution?.inputs ?? []) {
    const set = readers.get(input.key);
    set?.delete(key);
    if (set && !set.size) readers.delete(input.key);
  }
}

const serviceOfSlice = (slice: EndpointSlice) => {
  const service = slice.metadata.labels?.[SERVICE_NAME_LABEL];
  return service ? `${namespaceOf(slice)}/${service}` : undefined;
};

type PolicyFacts = { key: string; service: string; target: string; created: string };
