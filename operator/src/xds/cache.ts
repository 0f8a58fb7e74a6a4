// What the xDS server serves: the latest compile output, encoded, less what an Envoy
// rejected. A resource version an Envoy NACKed is never sent again; every Envoy gets the
// last version one accepted instead (or nothing, for a resource none ever accepted) until
// the resource changes.
//
// A publish looks at each resource once: one the compiler handed out again (the very same
// object) is passed over, so a sync at 10,000 policies that changed one does the work of one.
import { RESOURCE_TYPES, type Resource, type ResourceType, type Resources } from "../compile/envoy/types.ts";
import { Encoder, type Entry } from "./encode.ts";

/** An Envoy's rejection of a resource: which Envoy (node id), which resource, and its words. */
export type Rejection = { node: string; resource: string; message: string };

/** Names whose served entry changed, by type (a removed resource's name included). */
export type Changes = Map<ResourceType, Set<string>>;

type Slot = { resource: Resource; entry: Entry; seen: number };

const key = (type: ResourceType, name: string) => `${type} ${name}`;

export class ResourceCache {
  private readonly encoder: Encoder;
  /** By type and name: the resource last published, its entry, and the publish that saw it. */
  private readonly slots = new Map<ResourceType, Map<string, Slot>>(RESOURCE_TYPES.map((t) => [t, new Map()]));
  /** The entries as published, by type and name (kept up to date in place). */
  private readonly desired = new Map<ResourceType, Map<string, Entry>>(RESOURCE_TYPES.map((t) => [t, new Map()]));
  /** What is served: desired, or with rejections, a copy of it with rejected versions replaced. */
  private served = this.desired;
  /**
   * By type and name: the entry an Envoy last acknowledged. Keyed by the entry's own name
   * string, as `desired` is: a key made of type and name for each resource is a string of
   * its own, held as long as the resource is served (docs/benchmarks.md, "xDS").
   */
  private readonly accepted = new Map<ResourceType, Map<string, Entry>>(RESOURCE_TYPES.map((t) => [t, new Map()]));
  /** By type, name and version: what an Envoy rejected, and why. */
  private readonly rejected = new Map<string, Rejection>();
  /** By owner (policy key): the entries it has a part in, as desired. */
  private readonly owned = new Map<string, Entry[]>();
  /** Owners whose entries changed since the last takeTouched(). */
  private touched = new Set<string>();
  private publishes = 0;
  /** The compile output last published. */
  private published: Resources | undefined;

  constructor(encoder = new Encoder()) {
    this.encoder = encoder;
  }

  /** Takes a new compile output; returns what changed in what is served. */
  publish(resources: Resources): Changes {
    const seen = ++this.publishes;
    const changes: Changes = new Map();
    for (const type of RESOURCE_TYPES) {
      const list = resources[type];
      // The compiler's lists hold the very objects of last time where nothing changed, in
      // the same places: a list with the same names throughout needs no sweep for removals.
      const before = this.published?.[type];
      if (before?.length === list.length && this.updateInPlace(type, before, list, changes)) continue;
      const slots = this.slots.get(type)!;
      for (const resource of list) this.upsert(type, resource, seen, changes);
      if (slots.size > list.length) {
        for (const [name, slot] of slots) {
          if (slot.seen === seen) continue;
          slots.delete(name);
          this.desired.get(type)!.delete(name);
          this.disown(slot.entry);
          this.accepted.get(type)!.delete(name);
          changed(changes, type, name);
        }
      }
    }
    this.published = resources;
    if (!this.rejected.size && this.served === this.desired) return changes;
    // Rejections of versions no longer desired go: a new version is tried afresh.
    for (const [k] of this.rejected) {
      const [type, name, version] = splitKey(k);
      if (this.desired.get(type)!.get(name)?.version !== version) this.rejected.delete(k);
    }
    return this.reserve(changes);
  }

  /** Updates what differs between two lists of the same names in the same places; false if they are not that. */
  private updateInPlace(type: ResourceType, before: Resource[], list: Resource[], changes: Changes): boolean {
    for (let i = 0; i < list.length; i++) {
      const resource = list[i]!;
      if (resource === before[i]) continue;
      if (resource.name !== before[i]!.name) return false;
      this.upsert(type, resource, this.slots.get(type)!.get(resource.name)!.seen, changes);
    }
    return true;
  }

  private upsert(type: ResourceType, resource: Resource, seen: number, changes: Changes): void {
    const slots = this.slots.get(type)!;
    const slot = slots.get(resource.name);
    if (slot?.resource === resource) {
      slot.seen = seen;
      return;
    }
    const entry = this.encoder.entry(type, resource);
    const before = slot?.entry;
    if (!slot) slots.set(resource.name, { resource, entry, seen });
    else Object.assign(slot, { resource, entry, seen });
    if (before === entry) return;
    if (before) this.disown(before);
    this.own(entry);
    this.desired.get(type)!.set(resource.name, entry);
    if (before?.version !== entry.version) changed(changes, type, resource.name);
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

  /** An Envoy acknowledged `entry`. */
  accept(entry: Entry): void {
    this.accepted.get(entry.type)!.set(entry.name, entry);
  }

  /** An Envoy rejected `entry`; returns what that changes in what is served. */
  reject(entry: Entry, rejection: Rejection): Changes {
    this.rejected.set(`${key(entry.type, entry.name)} ${entry.version}`, rejection);
    return this.reserve(new Map());
  }

  /** Why the desired version of `entry` was rejected, if it was. */
  rejectionOf(entry: Entry): Rejection | undefined {
    return this.rejected.size ? this.rejected.get(`${key(entry.type, entry.name)} ${entry.version}`) : undefined;
  }

  /** The owners whose entries (or their versions) changed since the last call. */
  takeTouched(): Set<string> {
    const touched = this.touched;
    this.touched = new Set();
    return touched;
  }

  /** Whether any version is rejected (then what is served differs from what is desired). */
  get hasRejections(): boolean {
    return this.rejected.size > 0;
  }

  private own(entry: Entry): void {
    for (const owner of entry.owners) {
      this.touched.add(owner);
      const list = this.owned.get(owner);
      if (list) list.push(entry);
      else this.owned.set(owner, [entry]);
    }
  }

  private disown(entry: Entry): void {
    for (const owner of entry.owners) {
      this.touched.add(owner);
      const list = this.owned.get(owner);
      const at = list?.indexOf(entry) ?? -1;
      if (at >= 0) list!.splice(at, 1);
      if (list && !list.length) this.owned.delete(owner);
    }
  }

  /**
   * Works out what is served from what is desired (rejected versions replaced by the last
   * accepted ones, or left out), adding to `changes` the names whose served entry changes.
   */
  private reserve(changes: Changes): Changes {
    const before = this.served;
    const served = this.rejected.size ? new Map<ResourceType, Map<string, Entry>>() : this.desired;
    for (const type of RESOURCE_TYPES) {
      const desired = this.desired.get(type)!;
      let entries = desired;
      if (served !== this.desired) {
        entries = new Map();
        for (const [name, entry] of desired) {
          const substitute = this.rejected.has(`${key(type, name)} ${entry.version}`)
            ? this.accepted.get(type)!.get(name)
            : entry;
          if (substitute) entries.set(name, substitute);
        }
        served.set(type, entries);
      }
      const old = before.get(type)!;
      if (old === entries) continue;
      const names = changes.get(type) ?? new Set<string>();
      for (const [name, entry] of entries) if (old.get(name)?.version !== entry.version) names.add(name);
      for (const name of old.keys()) if (!entries.has(name)) names.add(name);
      if (names.size) changes.set(type, names);
    }
    this.served = served;
    return changes;
  }
}

function changed(changes: Changes, type: ResourceType, name: string): void {
  const names = changes.get(type);
  if (names) names.add(name);
  else changes.set(type, new Set([name]));
}

function splitKey(k: string): [ResourceType, string, string] {
  const first = k.indexOf(" ");
  const last = k.lastIndexOf(" ");
  return [k.slice(0, first) as ResourceType, k.slice(first + 1, last), k.slice(last + 1)];
}
