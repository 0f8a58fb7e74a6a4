// One Envoy's ADS stream: what it subscribed to, what it has, what it acknowledged, and
// what to send it next. Two protocols over the same bookkeeping:
//
//   Delta (DeltaAggregatedResources): per resource. Envoy says what it has when it (re)connects
//     (initial_resource_versions) and which names it wants; it is sent only resources it lacks
//     or has in another version, and the names of those removed.
//   State of the world (StreamAggregatedResources): per type. Each response holds every
//     resource of the type Envoy wants, under one version (a hash of theirs); a reconnecting
//     Envoy that reports that version is sent nothing.
//
// A type has at most one response in flight: changes made meanwhile go out together once
// Envoy has answered it (ACK or NACK), so a burst of changes is a few responses, not one each.
import { RESOURCE_TYPES, TYPE_URL, type ResourceType } from "../compile/envoy/types.ts";
import { changed, named } from "./blame.ts";
import { versionOf, type Entry } from "./encode.ts";

export type Node = { id: string; cluster: string; metadata?: Record<string, unknown> };

export type DeltaRequest = {
  node?: Node;
  typeUrl: string;
  resourceNamesSubscribe: string[];
  resourceNamesUnsubscribe: string[];
  initialResourceVersions: Record<string, string>;
  responseNonce: string;
  errorDetail?: { code: number; message: string };
};

export type SotwRequest = {
  versionInfo: string;
  node?: Node;
  resourceNames: string[];
  typeUrl: string;
  responseNonce: string;
  errorDetail?: { code: number; message: string };
};

/** A response to send, in the stream's protocol. */
export type DeltaResponse = { typeUrl: string; nonce: string; resources: Entry[]; removed: string[] };
export type SotwResponse = { typeUrl: string; nonce: string; version: string; resources: Entry[] };

/** What a stream needs of the server. */
export interface StreamHost {
  /** The entries served now to this stream, of one type. */
  entries(type: ResourceType, stream: Stream): ReadonlyMap<string, Entry>;
  /** Envoy acknowledged these entries. */
  accepted(stream: Stream, entries: Entry[]): void;
  /** Envoy no longer has these entries (removed, or unsubscribed from). */
  dropped(stream: Stream, entries: Entry[]): void;
  /** Envoy answered a response sent at `sentAt` (performance.now()): ACK or NACK. */
  answered(stream: Stream, type: ResourceType, sentAt: number, nack: boolean): void;
  /** Envoy rejected these entries, in these words. */
  rejected(stream: Stream, type: ResourceType, blamed: Entry[], message: string): void;
}

const TYPE_OF = new Map(RESOURCE_TYPES.map((t) => [TYPE_URL[t], t]));

let nextStreamId = 1;

/** What the two protocols share: the node, and what Envoy acknowledged, for status. */
export abstract class Stream {
  readonly id = nextStreamId++;
  node: Node | undefined;
  /** By type and name, the entry Envoy last acknowledged. */
  readonly acked = new Map<ResourceType, Map<string, Entry>>(RESOURCE_TYPES.map((t) => [t, new Map()]));
  protected readonly host: StreamHost;
  private nonces = 0;

  constructor(host: StreamHost) {
    this.host = host;
  }

  abstract readonly protocol: "delta" | "sotw";

  /** Whether Envoy runs `entry` as desired now. */
  has(entry: Entry): boolean {
    return this.acked.get(entry.type)!.get(entry.name)?.version === entry.version;
  }

  /** Whether Envoy has acknowledged a listener and routes at all: before, it serves nothing. */
  serving(): boolean {
    return this.acked.get("listener")!.size > 0 && this.acked.get("route")!.size > 0;
  }

  /** Since when (performance.now()) a response has been waiting for Envoy's answer; undefined when none is. */
  abstract busySince(): number | undefined;

  /** The served entries changed: send what Envoy should get now. Returns the responses. */
  abstract changed(changes: Map<ResourceType, Set<string>>): unknown[];

  /**
   * Whether Envoy has what `entry` requires (an aggregate cluster's members and their
   * endpoints). A dependency that is not served (one Envoy rejected it) is not waited for.
   */
  protected ready(entry: Entry): boolean {
    if (!entry.requires) return true;
    return entry.requires.every(
      ({ type, name }) =>
        this.acked.get(type)!.has(name) || !this.subscribes(type) || !this.host.entries(type, this).has(name),
    );
  }

  /** Whether Envoy asked for resources of this type at all. */
  protected abstract subscribes(type: ResourceType): boolean;

  protected nonce(): string {
    return String(++this.nonces);
  }

  protected typeOf(typeUrl: string): ResourceType | undefined {
    return TYPE_OF.get(typeUrl);
  }

  protected acknowledge(type: ResourceType, entries: Entry[], removed: string[] = []): void {
    const acked = this.acked.get(type)!;
    for (const entry of entries) acked.set(entry.name, entry);
    this.drop(type, removed);
    this.host.accepted(this, entries);
  }

  /** Forgets what Envoy had of these names. */
  protected drop(type: ResourceType, names: Iterable<string>): void {
    const acked = this.acked.get(type)!;
    const dropped: Entry[] = [];
    for (const name of names) {
      const entry = acked.get(name);
      if (!entry) continue;
      acked.delete(name);
      dropped.push(entry);
    }
    if (dropped.length) this.host.dropped(this, dropped);
  }
}

type DeltaState = {
  wildcard: boolean;
  subscribed: Set<string>;
  /**
   * Names Envoy said it had when it connected, in a version not served now: sent again (or
   * removed) at the next push. What Envoy has otherwise is what it acknowledged (acked):
   * nothing is pushed while a response is in flight, so that is all a push needs to know.
   */
  stale: Set<string>;
  inFlight?: { nonce: string; sent: Entry[]; removed: string[]; at: number };
  /** Groups of entries to send one by one, to find which one Envoy rejects (see nacked). */
  probe?: Entry[][];
  /** Names to look at when next pushing ("all": every one in scope). */
  dirty: Set<string> | "all";
  /** Names to send even in the version Envoy has (endpoints of a cluster it replaced). */
  resend: Set<string>;
  /** Names held back until Envoy has what they require (see Stream.ready). */
  held: Set<string>;
};

export class DeltaStream extends Stream {
  readonly protocol = "delta" as const;
  private readonly states = new Map<ResourceType, DeltaState>();

  /** Handles one request; returns the responses to send, in order. */
  request(req: DeltaRequest): DeltaResponse[] {
    if (req.node && !this.node) this.node = req.node;
    const type = this.typeOf(req.typeUrl);
    if (!type) return [];
    const served = this.host.entries(type, this);
    let state = this.states.get(type);
    if (!state) {
      // Subscribing to nothing in a first request is the legacy way of asking for all, which
      // Envoy does for clusters and listeners; endpoints, routes and secrets go by name.
      const legacyWildcard =
        req.resourceNamesSubscribe.length === 0 && (type === "cluster" || type === "listener" || type === "scope");
      const wildcard = legacyWildcard || req.resourceNamesSubscribe.includes("*");
      state = { wildcard, subscribed: new Set(), stale: new Set(), dirty: "all", resend: new Set(), held: new Set() };
      this.states.set(type, state);
      // What Envoy had before it reconnected is what it runs: where that is what is served,
      // it counts as acknowledged, and nothing is sent.
      const running: Entry[] = [];
      for (const [name, version] of Object.entries(req.initialResourceVersions)) {
        const entry = served.get(name);
        if (entry?.version === version) running.push(entry);
        else state.stale.add(name);
      }
      if (running.length) this.acknowledge(type, running);
    }
    if (req.responseNonce && state.inFlight?.nonce === req.responseNonce) {
      const { sent, removed, at } = state.inFlight;
      state.inFlight = undefined;
      this.host.answered(this, type, at, Boolean(req.errorDetail));
      if (req.errorDetail) this.nacked(type, state, sent, req.errorDetail.message);
      else this.acknowledge(type, sent, removed);
    }
    for (const name of req.resourceNamesSubscribe) {
      if (name === "*") state.wildcard = true;
      else if (!state.subscribed.has(name)) {
        // Kept as the served entry's own name where there is one: a string decoded from the
        // request, per name and per Envoy, would be tens of thousands of copies per Envoy.
        const own = served.get(name)?.name ?? name;
        state.subscribed.add(own);
        if (state.dirty !== "all") state.dirty.add(own);
      }
    }
    for (const name of req.resourceNamesUnsubscribe) {
      if (name === "*") state.wildcard = false;
      state.subscribed.delete(name);
      state.stale.delete(name);
    }
    this.drop(type, req.resourceNamesUnsubscribe); // Envoy drops what it unsubscribed from
    return this.pushAll();
  }

  busySince(): number | undefined {
    return earliest([...this.states.values()].map((s) => s.inFlight?.at));
  }

  protected subscribes(type: ResourceType): boolean {
    return this.states.has(type);
  }

  /**
   * Clusters first: the listener and routes wait while clusters or endpoints are on their
   * way or held back, so that a route never names a cluster Envoy does not have yet.
   */
  private waitsForClusters(type: ResourceType): boolean {
    if (type !== "listener" && type !== "scope" && type !== "route") return false;
    return (["cluster", "endpoint"] as const).some((t) => {
      const state = this.states.get(t);
      return !!state && (!!state.inFlight || state.held.size > 0);
    });
  }

  changed(changes: Map<ResourceType, Set<string>>): DeltaResponse[] {
    for (const [type, names] of changes) {
      const state = this.states.get(type);
      if (!state || state.dirty === "all") continue;
      for (const name of names) state.dirty.add(name);
    }
    return this.pushAll();
  }

  /** Every type in order (clusters before their endpoints, the listener before its routes). */
  private pushAll(): DeltaResponse[] {
    const responses: DeltaResponse[] = [];
    for (const type of RESOURCE_TYPES) {
      const response = this.push(type);
      if (response) responses.push(response);
    }
    return responses;
  }

  private push(type: ResourceType): DeltaResponse | undefined {
    const state = this.states.get(type);
    if (!state || state.inFlight || this.waitsForClusters(type)) return undefined;
    const served = this.host.entries(type, this);
    const acked = this.acked.get(type)!;
    const has = (name: string) => (state.stale.has(name) ? undefined : acked.get(name)?.version);
    while (state.probe?.length) {
      const group = state.probe.shift()!.flatMap((e) => {
        const now = served.get(e.name);
        return now && now.version === e.version && has(e.name) !== now.version ? [now] : [];
      });
      if (group.length) return this.respond(type, state, group, []);
    }
    state.probe = undefined;
    const inScope = (name: string) => state.wildcard || state.subscribed.has(name);
    const names =
      state.dirty === "all"
        ? new Set([...served.keys(), ...acked.keys(), ...state.stale, ...state.subscribed])
        : new Set([...state.dirty, ...state.resend, ...state.held]);
    const sent: Entry[] = [];
    const removed: string[] = [];
    state.held.clear();
    for (const name of names) {
      const entry = served.get(name);
      if (entry && inScope(name)) {
        if (has(name) === entry.version && !state.resend.has(name)) continue;
        if (this.ready(entry)) sent.push(entry);
        else state.held.add(name);
      } else if (acked.has(name) || state.stale.has(name)) {
        removed.push(name);
      }
    }
    state.dirty = new Set();
    state.resend.clear();
    if (!sent.length && !removed.length) return undefined;
    return this.respond(type, state, sent, removed);
  }

  private respond(type: ResourceType, state: DeltaState, sent: Entry[], removed: string[]): DeltaResponse {
    for (const entry of sent) state.stale.delete(entry.name);
    for (const name of removed) state.stale.delete(name);
    if (type === "cluster") this.resendEndpointsOf(sent);
    const nonce = this.nonce();
    state.inFlight = { nonce, sent, removed, at: performance.now() };
    return { typeUrl: TYPE_URL[type], nonce, resources: sent, removed };
  }

  /**
   * Envoy builds a cluster it is sent anew, and a new EDS cluster waits for its endpoints
   * (until the initial fetch timeout) even when they did not change: send them again.
   */
  private resendEndpointsOf(clusters: Entry[]): void {
    const endpoints = this.states.get("endpoint");
    if (!endpoints) return;
    for (const cluster of clusters) {
      if (cluster.edsName && this.acked.get("endpoint")!.has(cluster.edsName) && endpoints.dirty !== "all")
        endpoints.resend.add(cluster.edsName);
    }
  }

  /**
   * Envoy rejected a response. When it names what it rejected, it runs the rest. When it
   * names nothing, it ran none of it, and the culprit is among what changed: that is sent
   * again in halves (and a rejected half in halves again), policy by policy and then resource
   * by resource, until the one Envoy rejects is found, so that the others are not held back.
   */
  private nacked(type: ResourceType, state: DeltaState, sent: Entry[], message: string): void {
    const acked = this.acked.get(type)!;
    const blamed = named(sent, message);
    const suspects = blamed.length ? blamed : sent;
    // Envoy has what it had of these (acked): they are looked at again at the next push.
    if (state.dirty !== "all") for (const entry of suspects) state.dirty.add(entry.name);
    if (blamed.length) {
      this.host.rejected(this, type, blamed, message);
      const ran = sent.filter((e) => !blamed.includes(e));
      if (ran.length) this.acknowledge(type, ran);
      return;
    }
    // Policy by policy first, then a policy's resources one by one.
    const suspect = changed(sent, acked);
    const byPolicy = byOwners(suspect);
    const groups = byPolicy.length > 1 ? byPolicy : suspect.map((e) => [e]);
    if (groups.length > 1) {
      const half = Math.ceil(groups.length / 2);
      state.probe = [groups.slice(0, half).flat(), groups.slice(half).flat(), ...(state.probe ?? [])];
      state.dirty = "all";
      return;
    }
    this.host.rejected(this, type, changed(sent, acked), message);
  }
}

/** Entries grouped by the policies they belong to. */
function byOwners(entries: Entry[]): Entry[][] {
  const groups = new Map<string, Entry[]>();
  for (const entry of entries) {
    const key = entry.owners.join(",");
    const group = groups.get(key);
    if (group) group.push(entry);
    else groups.set(key, [entry]);
  }
  return [...groups.values()];
}

type SotwState = {
  wildcard: boolean;
  names: Set<string>;
  /** The last response sent, and whether Envoy has answered it. */
  sent?: { nonce: string; version: string; entries: Entry[] };
  inFlight: boolean;
  /** When the response in flight was sent. */
  at: number;
  /** Send the next response even if its version is the one sent last. */
  force: boolean;
  /** Groups of entries to try one by one, to find which one Envoy rejects; the rest are held back meanwhile. */
  probe?: Entry[][];
  /** How many entries the last response held back until Envoy has what they require. */
  held: number;
};

export class SotwStream extends Stream {
  readonly protocol = "sotw" as const;
  private readonly states = new Map<ResourceType, SotwState>();

  request(req: SotwRequest): SotwResponse[] {
    if (req.node && !this.node) this.node = req.node;
    const type = this.typeOf(req.typeUrl);
    if (!type) return [];
    const names = new Set(req.resourceNames.filter((n) => n !== "*"));
    let state = this.states.get(type);
    if (!state) {
      const legacyWildcard = names.size === 0 && (type === "cluster" || type === "listener" || type === "scope");
      state = {
        wildcard: legacyWildcard || req.resourceNames.includes("*"),
        names,
        inFlight: false,
        at: 0,
        force: false,
        held: 0,
      };
      this.states.set(type, state);
      // A reconnecting Envoy reports the version it runs: when that is what would be sent,
      // it has it already.
      const now = this.contents(type, state, EMPTY_SET, false);
      if (req.versionInfo && req.versionInfo === now.version) {
        state.sent = { nonce: "", ...now };
        this.acknowledge(type, now.entries);
      }
    } else {
      if (req.responseNonce && state.sent && req.responseNonce !== state.sent.nonce) return []; // about an older response
      if (state.inFlight && state.sent && req.responseNonce === state.sent.nonce) {
        state.inFlight = false;
        this.host.answered(this, type, state.at, Boolean(req.errorDetail));
        if (req.errorDetail) this.nacked(type, state, state.sent.entries, req.errorDetail.message);
        else {
          state.probe?.shift(); // the group tried is fine
          this.acknowledgeAll(type, state.sent.entries);
        }
      }
      if (!state.wildcard && !sameSet(names, state.names)) state.names = names;
    }
    return this.pushAll();
  }

  busySince(): number | undefined {
    return earliest([...this.states.values()].map((s) => (s.inFlight ? s.at : undefined)));
  }

  protected subscribes(type: ResourceType): boolean {
    return this.states.has(type);
  }

  changed(_changes: Map<ResourceType, Set<string>>): SotwResponse[] {
    return this.pushAll();
  }

  private pushAll(): SotwResponse[] {
    const responses: SotwResponse[] = [];
    for (const type of RESOURCE_TYPES) {
      const response = this.push(type);
      if (response) responses.push(response);
    }
    return responses;
  }

  private push(type: ResourceType): SotwResponse | undefined {
    const state = this.states.get(type);
    if (!state || state.inFlight) return undefined;
    // As for Delta: clusters and endpoints first (see DeltaStream.waitsForClusters).
    if (
      (type === "listener" || type === "scope" || type === "route") &&
      (["cluster", "endpoint"] as const).some((t) => {
        const s = this.states.get(t);
        return !!s && (s.inFlight || s.held > 0);
      })
    )
      return undefined;
    // Probing (see nacked): the first group goes as served, the later ones as Envoy has them.
    if (state.probe && !state.probe.length) state.probe = undefined;
    const held = state.probe
      ? new Set(
          state.probe
            .slice(1)
            .flat()
            .map((e) => e.name),
        )
      : EMPTY_SET;
    const now = this.contents(type, state, held);
    if (state.sent?.version === now.version && !state.force) return undefined;
    state.force = false;
    const nonce = this.nonce();
    const before = state.sent?.entries;
    state.sent = { nonce, ...now };
    state.inFlight = true;
    state.at = performance.now();
    if (type === "cluster" && before) this.resendEndpointsOf(before, now.entries);
    return { typeUrl: TYPE_URL[type], nonce, version: now.version, resources: now.entries };
  }

  /**
   * What a response of this type holds now, and its version: the `held` names, and with
   * `holdUnready` those Envoy lacks what they require for, as Envoy has them (if at all).
   */
  private contents(
    type: ResourceType,
    state: SotwState,
    held: ReadonlySet<string> = EMPTY_SET,
    holdUnready = true,
  ): { version: string; entries: Entry[] } {
    const served = this.host.entries(type, this);
    const acked = this.acked.get(type)!;
    state.held = 0;
    // Held back (probing, or not ready): in the version Envoy has, if it has one.
    const pick = (name: string): Entry[] => {
      let entry = served.get(name);
      if (held.has(name) || (entry && holdUnready && !this.ready(entry))) {
        if (entry && !held.has(name)) state.held++;
        entry = acked.get(name);
      }
      return entry ? [entry] : [];
    };
    const entries = state.wildcard ? [...served.keys()].flatMap(pick) : [...state.names].sort().flatMap(pick);
    return { version: versionOf(entries.map((e) => `${e.name}=${e.version}`).join("\n")), entries };
  }

  /** See DeltaStream.resendEndpointsOf: endpoints of clusters that were replaced go again. */
  private resendEndpointsOf(before: Entry[], after: Entry[]): void {
    const endpoints = this.states.get("endpoint");
    if (!endpoints) return;
    const old = new Map(before.map((e) => [e.name, e.version]));
    if (
      after.some((c) => c.edsName && old.has(c.name) && old.get(c.name) !== c.version && endpoints.names.has(c.edsName))
    )
      endpoints.force = true;
  }

  private acknowledgeAll(type: ResourceType, entries: Entry[]): void {
    // A state-of-the-world response replaces everything of its type.
    const names = new Set(entries.map((e) => e.name));
    this.drop(
      type,
      [...this.acked.get(type)!.keys()].filter((name) => !names.has(name)),
    );
    this.acknowledge(type, entries);
  }

  /**
   * Envoy rejected a response: it runs the rest when it names what it rejected, and none of
   * it otherwise. Then, as a Delta stream does, what changed since it last accepted one is
   * tried again a half at a time; a state-of-the-world response holds everything, so the
   * half not tried goes in the version Envoy has (or not at all, if it has none).
   */
  private nacked(type: ResourceType, state: SotwState, sent: Entry[], message: string): void {
    const acked = this.acked.get(type)!;
    const blamed = named(sent, message);
    if (blamed.length) {
      this.host.rejected(this, type, blamed, message);
      this.acknowledge(
        type,
        sent.filter((e) => !blamed.includes(e)),
      );
      return;
    }
    const suspect = state.probe?.[0] ?? changed(sent, acked);
    const byPolicy = byOwners(suspect);
    const groups = byPolicy.length > 1 ? byPolicy : suspect.map((e) => [e]);
    if (groups.length > 1) {
      const half = Math.ceil(groups.length / 2);
      state.probe = [groups.slice(0, half).flat(), groups.slice(half).flat(), ...(state.probe?.slice(1) ?? [])];
      return;
    }
    state.probe?.shift();
    this.host.rejected(this, type, changed(suspect, acked), message);
  }
}

const earliest = (times: (number | undefined)[]) =>
  times.reduce<number | undefined>(
    (min, t) => (t !== undefined && (min === undefined || t < min) ? t : min),
    undefined,
  );

const EMPTY_SET: ReadonlySet<string> = new Set();

const sameSet = (a: Set<string>, b: Set<string>) => a.size === b.size && [...a].every((x) => b.has(x));
