// What the xDS server serves: the latest compile output, encoded, less what an Envoy
// rejected. A resource version an Envoy NACKed is never sent again; every Envoy gets the
// last version one accepted instead (or nothing, for a resource none ever accepted) until
// the resource changes. For the route configuration this holds per virtual host: one
// policy's rejected host does not hold back the others' changes.
import { RESOURCE_TYPES, type ResourceType, type Resources } from "../compile/envoy/types.ts";
import { Encoder, itemized, type Entry, type PartEntry } from "./encode.ts";

/** An Envoy's rejection of a resource: which Envoy (node id), which resource, and its words. */
export type Rejection = { node: string; resource: string; message: string };

/** Names whose served entry changed, by type (a removed resource's name included). */
export type Changes = Map<ResourceType, Set<string>>;

const key = (type: ResourceType, name: string) => `${type} ${name}`;

export class ResourceCache {
  private readonly encoder: Encoder;
  /** The latest publish, as compiled. */
  private desired = emptyMaps();
  /** What is served: desired, with rejected versions replaced. */
  private served = emptyMaps();
  /** By type and name: the entry an Envoy last acknowledged. */
  private readonly accepted = new Map<string, Entry>();
  /** By type, name and owner: the item an Envoy last acknowledged. */
  private readonly acceptedParts = new Map<string, PartEntry>();
  /** By type, name and version (and owner, for items): what an Envoy rejected, and why. */
  private readonly rejected = new Map<string, Rejection>();
  /** By owner (policy key): the entries it has a part in, as desired. */
  private owned = new Map<string, Entry[]>();

  constructor(encoder = new Encoder()) {
    this.encoder = encoder;
  }

  /** Takes a new compile output; returns what changed in what is served. */
  publish(resources: Resources): Changes {
    const desired = emptyMaps();
    const owned = new Map<string, Entry[]>();
    for (const type of RESOURCE_TYPES) {
      const entries = desired.get(type)!;
      for (const resource of resources[type]) {
        const entry = this.encoder.entry(type, resource);
        entries.set(resource.name, entry);
        for (const owner of entry.parts ? entry.parts.keys() : entry.owners) {
          const list = owned.get(owner);
          if (list) list.push(entry);
          else owned.set(owner, [entry]);
        }
      }
    }
    this.desired = desired;
    this.owned = owned;
    // Acceptances of what is no longer wanted would only hold memory: swept now and then.
    let wanted = 0;
    for (const entries of desired.values()) wanted += entries.size;
    if (this.accepted.size > 1.25 * wanted + 100) {
      for (const k of this.accepted.keys()) {
        const [type, name] = splitKey(k);
        if (!desired.get(type)!.has(name)) this.accepted.delete(k);
      }
    }
    return this.reserve();
  }

  /** The entries served now, of one type. */
  entries(type: ResourceType): ReadonlyMap<string, Entry> {
    return this.served.get(type)!;
  }

  /** The entries a policy has a part in, as the latest publish wants them. */
  entriesOf(owner: string): readonly Entry[] {
    return this.owned.get(owner) ?? [];
  }

  /** Every policy with a part in what is published. */
  owners(): IterableIterator<string> {
    return this.owned.keys();
  }

  /** The desired entry of a type and name. */
  desiredEntry(type: ResourceType, name: string): Entry | undefined {
    return this.desired.get(type)!.get(name);
  }

  /** An Envoy acknowledged `entry`. */
  accept(entry: Entry): void {
    this.accepted.set(key(entry.type, entry.name), entry);
    if (entry.parts) for (const part of entry.parts.values()) this.acceptedParts.set(`${key(entry.type, entry.name)} ${part.owner}`, part);
  }

  /** An Envoy rejected `entry` (only these owners' items of it, for an itemized one); returns what that changes in what is served. */
  reject(entry: Entry, rejection: Rejection, owners?: readonly string[]): Changes {
    if (entry.parts) {
      for (const owner of owners ?? [...entry.parts.keys()]) {
        const part = entry.parts.get(owner);
        if (part) this.rejected.set(`${key(entry.type, entry.name)} ${owner} ${part.version}`, rejection);
      }
    } else {
      this.rejected.set(`${key(entry.type, entry.name)} ${entry.version}`, rejection);
    }
    return this.reserve();
  }

  /** Why the desired version of a policy's part in `entry` was rejected, if it was. */
  rejectionOf(entry: Entry, owner: string): Rejection | undefined {
    if (!this.rejected.size) return undefined;
    const part = entry.parts?.get(owner);
    return this.rejected.get(part ? `${key(entry.type, entry.name)} ${owner} ${part.version}` : `${key(entry.type, entry.name)} ${entry.version}`);
  }

  /** Works out what is served from what is desired, and returns the names whose entry changed. */
  private reserve(): Changes {
    // Without rejections, what is served is what is desired: the same maps.
    const served = this.rejected.size ? emptyMaps() : this.desired;
    if (this.rejected.size) {
      for (const type of RESOURCE_TYPES) {
        const entries = served.get(type)!;
        for (const [name, entry] of this.desired.get(type)!) {
          const substitute = this.substitute(entry);
          if (substitute) entries.set(name, substitute);
        }
      }
    }
    // Drop rejections of versions no longer desired: a new version is tried afresh.
    if (this.rejected.size) {
      const wanted = new Set<string>();
      for (const entries of this.desired.values())
        for (const e of entries.values()) {
          if (e.parts) for (const p of e.parts.values()) wanted.add(`${key(e.type, e.name)} ${p.owner} ${p.version}`);
          else wanted.add(`${key(e.type, e.name)} ${e.version}`);
        }
      for (const k of this.rejected.keys()) if (!wanted.has(k)) this.rejected.delete(k);
    }
    const changes: Changes = new Map();
    for (const type of RESOURCE_TYPES) {
      const before = this.served.get(type)!;
      const after = served.get(type)!;
      const names = new Set<string>();
      if (before === after) continue;
      for (const [name, entry] of after) if (before.get(name)?.version !== entry.version) names.add(name);
      for (const name of before.keys()) if (!after.has(name)) names.add(name);
      if (names.size) changes.set(type, names);
    }
    this.served = served;
    return changes;
  }

  /** The entry to serve instead of `entry`: itself, the accepted one, or none. */
  private substitute(entry: Entry): Entry | undefined {
    const k = key(entry.type, entry.name);
    if (!entry.parts) return this.rejected.has(`${k} ${entry.version}`) ? this.accepted.get(k) : entry;
    let changed = false;
    const parts = new Map<string, PartEntry>();
    for (const [owner, part] of entry.parts) {
      if (!this.rejected.has(`${k} ${owner} ${part.version}`)) parts.set(owner, part);
      else {
        changed = true;
        const accepted = this.acceptedParts.get(`${k} ${owner}`);
        if (accepted) parts.set(owner, accepted);
      }
    }
    return changed ? itemized(entry.type, entry.name, entry.owners, entry.head!, parts) : entry;
  }
}

function emptyMaps(): Map<ResourceType, Map<string, Entry>> {
  return new Map(RESOURCE_TYPES.map((t) => [t, new Map<string, Entry>()]));
}

function splitKey(k: string): [ResourceType, string] {
  const at = k.indexOf(" ");
  return [k.slice(0, at) as ResourceType, k.slice(at + 1)];
}
