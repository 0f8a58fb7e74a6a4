// Compile output -> protobuf, once per content: each resource is encoded with Envoy's own
// descriptors and versioned by a hash of its bytes, so an unchanged resource has the same
// version after an operator restart (and an Envoy that reconnects is sent nothing).
//
// What a resource is made from is its `source` (a policy's IR, a Service's endpoints): while
// that is the very same object, the encoding made from it is reused, so a sync that changed
// one policy of 10,000 encodes that policy's few resources and nothing else.
import { createHash } from "node:crypto";
import { TYPE_URL, type Dependency, type Resource, type ResourceType } from "../compile/envoy/types.ts";
import { sameItems } from "../compile/same-items.ts";
import { encodeJson, typeNameOf } from "./envoy-api.ts";

/** One resource as the xDS server serves it. */
export type Entry = {
  type: ResourceType;
  name: string;
  version: string;
  /** The resource's protobuf encoding, the value of its Any. */
  bytes: Uint8Array;
  owners: readonly string[];
  /** Of a cluster that gets its endpoints over EDS: the ClusterLoadAssignment's name. */
  edsName?: string;
  /** What Envoy must have before it gets this (see Resource.requires). */
  requires?: readonly Dependency[];
};

/** A resource that cannot be encoded: a bug of the compiler's, named by its resource. */
export class EncodeError extends Error {
  readonly owners: readonly string[];
  constructor(type: ResourceType, name: string, owners: readonly string[], cause: Error) {
    super(`${type} ${name}: ${cause.message}`, { cause });
    this.owners = owners;
  }
}

/**
 * 16 hex digits of a SHA-256: written from the first 8 bytes, so the string is one of its own
 * (a slice of the full hex would keep all 64 digits alive, once per resource).
 */
export const versionOf = (bytes: Uint8Array | string) =>
  createHash("sha256").update(bytes).digest().toString("hex", 0, 8);

/** A test seam: changes a resource's JSON before it is encoded. */
export type Corrupt = (type: ResourceType, name: string, json: Record<string, unknown>) => void;

/**
 * Encodes resources, remembering the entry per source, type and name. `corrupt` is a test
 * seam (tests use it to make Envoy reject one policy's cluster); production code never sets it.
 */
export class Encoder {
  /** By source: its one entry, or (a policy's IR makes several) its entries by type and name. */
  private readonly made = new WeakMap<object, Entry | Map<string, Entry>>();
  private readonly corrupt?: Corrupt;

  constructor(options: { corrupt?: Corrupt } = {}) {
    if (options.corrupt) this.corrupt = options.corrupt;
  }

  /** The entry for one resource: the very entry of last time while its source and owners are the same. */
  entry(type: ResourceType, resource: Resource): Entry {
    const { name, owners, source } = resource;
    const made = this.made.get(source);
    // Keyed by type too: one source makes resources of several types, some of one name.
    const key = `${type} ${name}`;
    const last =
      made === undefined
        ? undefined
        : made instanceof Map
          ? made.get(key)
          : made.type === type && made.name === name
            ? made
            : undefined;
    if (last && sameItems(last.owners, owners)) return last;
    const entry: Entry = last ? { ...last, owners } : this.encode(type, resource);
    if (made === undefined || made === last) this.made.set(source, entry);
    else if (made instanceof Map) made.set(key, entry);
    else
      this.made.set(
        source,
        new Map([
          [`${made.type} ${made.name}`, made],
          [key, entry],
        ]),
      );
    return entry;
  }

  private encode(type: ResourceType, resource: Resource): Entry {
    const { name, owners } = resource;
    const json = resource.value() as Record<string, unknown>;
    this.corrupt?.(type, name, json);
    let bytes: Uint8Array;
    try {
      bytes = encodeJson(typeNameOf(TYPE_URL[type]), json);
    } catch (error) {
      throw new EncodeError(type, name, owners, error as Error);
    }
    const edsName =
      type === "cluster"
        ? (json["eds_cluster_config"] as { service_name?: string } | undefined)?.service_name
        : undefined;
    const requires = resource.requires?.();
    return {
      type,
      name,
      version: versionOf(bytes),
      bytes,
      owners,
      ...(edsName ? { edsName } : {}),
      ...(requires?.length ? { requires } : {}),
    };
  }
}
