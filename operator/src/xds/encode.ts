// Compile output -> protobuf, once per content: each resource is encoded with Envoy's own
// descriptors and versioned by a hash of its bytes, so an unchanged resource has the same
// version after an operator restart (and an Envoy that reconnects is sent nothing).
//
// What a resource is made from is its `source` (a policy's IR, a Service's endpoints): while
// that is the very same object, the encoding made from it is reused, so a sync that changed
// one policy of 10,000 encodes that policy's few resources and nothing else.
import { createHash } from "node:crypto";
import { TYPE_URL, type Dependency, type Part, type Resource, type ResourceType } from "../compile/envoy/types.ts";
import { encodeJson, typeNameOf } from "./envoy-api.ts";

/** One resource as the xDS server serves it. */
export type Entry = {
  type: ResourceType;
  name: string;
  version: string;
  /** The resource's protobuf encoding, the value of its Any. */
  bytes: Uint8Array;
  owners: readonly string[];
  /** Of an itemized resource (the route configuration): its bytes but the items', and each owner's item. */
  head?: Uint8Array;
  parts?: ReadonlyMap<string, PartEntry>;
  /** Of a cluster that gets its endpoints over EDS: the ClusterLoadAssignment's name. */
  edsName?: string;
  /** What Envoy must have before it gets this (see Resource.requires). */
  requires?: readonly Dependency[];
};

export type PartEntry = { owner: string; version: string; bytes: Uint8Array };

/** A resource that cannot be encoded: a bug of the compiler's, named by its resource. */
export class EncodeError extends Error {
  readonly owners: readonly string[];
  constructor(type: ResourceType, name: string, owners: readonly string[], cause: Error) {
    super(`${type} ${name}: ${cause.message}`, { cause });
    this.owners = owners;
  }
}

export const versionOf = (bytes: Uint8Array | string) => createHash("sha256").update(bytes).digest("hex").slice(0, 16);

type Encoded = { version: string; bytes: Uint8Array; edsName?: string; /** The entry (or item) last made of it. */ entry?: Entry; part?: PartEntry };

/** A test seam: changes a resource's JSON before it is encoded. */
export type Corrupt = (type: ResourceType, name: string, json: Record<string, unknown>) => void;

/**
 * Encodes resources, remembering the encoding per source and name. `corrupt` is a test seam:
 * it may change a resource's JSON before it is encoded (tests use it to make Envoy reject one
 * policy's cluster); production code never sets it.
 */
export class Encoder {
  private readonly made = new WeakMap<object, Map<string, Encoded>>();
  /** The itemized entries last made, by name: the same entry again while its items are. */
  private readonly lastItemized = new Map<string, Entry>();
  private readonly corrupt?: Corrupt;

  constructor(options: { corrupt?: Corrupt } = {}) {
    if (options.corrupt) this.corrupt = options.corrupt;
  }

  /**
   * The entry for one resource; itemized resources get their items encoded one by one. An
   * unchanged resource gets the very entry it got last time: a sync at 10,000 policies makes
   * no new objects for what did not change.
   */
  entry(type: ResourceType, resource: Resource): Entry {
    const { name, owners } = resource;
    if (!resource.items) {
      const encoded = this.encoded(type, name, owners, resource, resource);
      if (encoded.entry && sameOwners(encoded.entry.owners, owners)) return encoded.entry;
      const { version, bytes, edsName } = encoded;
      const requires = resource.requires?.();
      return (encoded.entry = { type, name, version, bytes, owners, ...(edsName ? { edsName } : {}), ...(requires?.length ? { requires } : {}) });
    }
    const head = this.encoded(type, name, owners, resource, resource);
    const last = this.lastItemized.get(name);
    const parts = new Map<string, PartEntry>();
    let same = last?.head === head.bytes && last.parts!.size === resource.items.parts.length && sameOwners(last.owners, owners);
    for (const part of resource.items.parts) {
      const encoded = this.encoded(type, `${name} ${part.owner}`, [part.owner], part, itemOf(resource.items.key, part));
      const entry = (encoded.part ??= { owner: part.owner, version: encoded.version, bytes: encoded.bytes });
      if (same && last!.parts!.get(part.owner) !== entry) same = false;
      parts.set(part.owner, entry);
    }
    if (same) return last!;
    const entry = itemized(type, name, owners, head.bytes, parts);
    this.lastItemized.set(name, entry);
    return entry;
  }

  private encoded(type: ResourceType, key: string, owners: readonly string[], from: { source: object }, value: { value(): object }): Encoded {
    let bySource = this.made.get(from.source);
    let encoded = bySource?.get(key);
    if (encoded) return encoded;
    const json = value.value() as Record<string, unknown>;
    this.corrupt?.(type, key, json);
    let bytes: Uint8Array;
    try {
      bytes = encodeJson(typeNameOf(TYPE_URL[type]), json);
    } catch (error) {
      throw new EncodeError(type, key, owners, error as Error);
    }
    const edsName = type === "cluster" ? (json["eds_cluster_config"] as { service_name?: string } | undefined)?.service_name : undefined;
    encoded = { version: versionOf(bytes), bytes, ...(edsName ? { edsName } : {}) };
    if (!bySource) this.made.set(from.source, (bySource = new Map()));
    bySource.set(key, encoded);
    return encoded;
  }
}

const sameOwners = (a: readonly string[], b: readonly string[]) => a === b || (a.length === b.length && a.every((o, i) => o === b[i]));

/** An item as a message of its resource's type holding only that item in its list. */
const itemOf = (key: string, part: Part) => ({ value: () => ({ [key]: [part.value()] }) });

/**
 * An itemized resource from its head and items. Protobuf defines the concatenation of two
 * encodings of a message as their merge, a repeated field's items appended in order, so the
 * head's bytes followed by each single-item encoding are the whole resource's encoding: an
 * item that did not change is not encoded again, and 10,000 virtual hosts are joined, not
 * re-encoded, when one of them changes. (Measured in docs/benchmarks.md.)
 */
export function itemized(type: ResourceType, name: string, owners: readonly string[], head: Uint8Array, parts: ReadonlyMap<string, PartEntry>): Entry {
  const versions = [versionOf(head)];
  let length = head.length;
  for (const part of parts.values()) {
    versions.push(part.version);
    length += part.bytes.length;
  }
  let bytes: Uint8Array | undefined;
  return {
    type,
    name,
    owners,
    version: versionOf(versions.join(",")),
    head,
    parts,
    // Joined when first sent: a sync whose stream is busy may never need it.
    get bytes() {
      if (bytes) return bytes;
      bytes = new Uint8Array(length);
      bytes.set(head, 0);
      let at = head.length;
      for (const part of parts.values()) {
        bytes.set(part.bytes, at);
        at += part.bytes.length;
      }
      return bytes;
    },
  };
}
