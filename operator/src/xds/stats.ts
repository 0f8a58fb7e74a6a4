// What the Envoys' own stats say of each cluster, pushed by each Envoy's metrics_service
// sink (Envoy's MetricsService, served on the xDS port) every few seconds:
//
//   StreamMetricsMessage (a batch of Prometheus metric families, counters as deltas)
//     -> per Envoy and cluster: healthy and total hosts (total only of a member resolved by
//        DNS: the operator knows the others'), hosts ejected, requests since the last report
//     -> combined over the Envoys that report (an Envoy silent for REPORT_AGE_OUT_MS counts no more)
//
// It knows clusters, not policies: the controller maps clusters to policies' backends.
//
// Only the few stats read here are decoded; the rest of each report is skipped unread: a
// report holds several metric families per cluster, and decoding them all into messages
// costs more than the operator can spend (docs/benchmarks.md, "Live state"). A name read
// once is known again by its bytes, in the order the Envoy sends them, and not decoded again.
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { DNS_STATS_SUFFIX } from "../compile/envoy/types.ts";

/** An Envoy whose last report is older than this counts no more (it left, or stopped reporting). */
export const REPORT_AGE_OUT_MS = 30_000;

/** The stats read, as Envoy names them after `cluster.<name>.`, and where each goes. */
const READ = new Map<string, number>([
  ["membership_healthy", 0],
  ["membership_total", 1],
  ["outlier_detection.ejections_active", 2],
  ["upstream_rq_total", 3],
]);
/** The same, as the bytes that end a stat's name (".membership_healthy"...), matched before any name is decoded. */
const SUFFIXES = [...READ].map(([stat, field]) => ({ bytes: new TextEncoder().encode(`.${stat}`), field }));
const PREFIX = new TextEncoder().encode("cluster.");
const SLASH = 0x2f;
const utf8 = new TextDecoder();
const HEALTHY = 0;
const TOTAL = 1;
const EJECTED = 2;
const REQUESTS = 3;
/** The fields each Envoy's view keeps per cluster: the host counts before REQUESTS (requests are summed over the Envoys at once). */
const GAUGES = REQUESTS;

/** One cluster as the reporting Envoys see it together. */
export type ClusterView = {
  /** Healthy hosts: the most any one Envoy sees (a backend is up if any Envoy reaches it). */
  healthy: number;
  /** Hosts: the most any one Envoy has. */
  total: number;
  /** Hosts ejected by outlier detection: the most any one Envoy ejects. */
  ejected: number;
  /** How many Envoys reported the cluster. */
  reporters: number;
};

type NodeReport = {
  /** When this Envoy last reported anything (performance.now()). */
  at: number;
  /**
   * By cluster index: its GAUGES host counts. Float32 holds every count exactly (below 2^24)
   * in half the room, and every reporting Envoy has such an array (docs/benchmarks.md, "Live state").
   */
  values: Float32Array;
  /** By cluster index: when it was last reported, so that a cluster Envoy dropped ages out too. */
  seen: Float64Array;
  /** The stats read, in the order of this Envoy's last report, and the place of the one expected next. */
  order: Stat[];
  next: number;
};

/**
 * A stat read: where its name's bytes are in the name arena, its cluster's index and its place;
 * `sameHash` chains names of the same hash.
 */
type Stat = { at: number; length: number; cluster: number; field: number; sameHash: Stat | undefined };

export class ClusterStats {
  private readonly index = new Map<string, number>();
  /** The names read so far, by their bytes' FNV-1a hash. */
  private readonly names = new Map<number, Stat>();
  /** Their bytes, one after the other: one allocation for all, and close together when compared. */
  private arena = new Uint8Array(1 << 16);
  private arenaUsed = 0;
  private readonly nodes = new Map<string, NodeReport>();
  /** Requests since the last takeRequests(), summed over the Envoys, by cluster index. */
  private requests: Float64Array = new Float64Array(64);
  private readonly listeners = new Set<(changed: boolean) => void>();
  /** Whether the report being read changed a cluster's health (not only its request count). */
  private changed = false;

  /** Takes one StreamMetricsMessage of the Envoy `node` (its id, from the stream's first message). */
  ingest(node: string, message: Uint8Array, now = performance.now()): void {
    const report = this.reportOf(node, now);
    this.changed = false;
    const wire = new Wire(message);
    while (wire.pos < message.length) {
      const tag = wire.varint();
      if (tag === ENVOY_METRICS) this.family(wire, report, now);
      else wire.skip(tag);
    }
    for (const listener of this.listeners) listener(this.changed);
  }

  /** The node id a stream's first message names (Identifier.node.id), if it does. */
  static nodeOf(message: Uint8Array): string | undefined {
    const reader = new BinaryReader(message);
    while (reader.pos < reader.len) {
      const [field, wire] = reader.tag();
      if (field !== 1 || wire !== WireType.LengthDelimited) {
        reader.skip(wire);
        continue;
      }
      const identifier = new BinaryReader(reader.bytes());
      while (identifier.pos < identifier.len) {
        const [f, w] = identifier.tag();
        if (f !== 1 || w !== WireType.LengthDelimited) {
          identifier.skip(w);
          continue;
        }
        const nodeMessage = new BinaryReader(identifier.bytes());
        while (nodeMessage.pos < nodeMessage.len) {
          const [nf, nw] = nodeMessage.tag();
          if (nf === 1 && nw === WireType.LengthDelimited) return nodeMessage.string();
          nodeMessage.skip(nw);
        }
      }
    }
    return undefined;
  }

  /** Called after each report taken: `changed` when it changed what a cluster's health reads. */
  onReport(listener: (changed: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The Envoys reporting now. */
  reporters(now = performance.now()): string[] {
    this.expire(now);
    return [...this.nodes.keys()];
  }

  /** When the Envoy `node` last reported (performance.now()), if it reports now. */
  lastReportAt(node: string): number | undefined {
    return this.nodes.get(node)?.at;
  }

  /** The cluster as the Envoys reporting now see it; undefined if none reports it. */
  cluster(name: string, now = performance.now()): ClusterView | undefined {
    const i = this.index.get(name);
    if (i === undefined) return undefined;
    let view: ClusterView | undefined;
    for (const report of this.nodes.values()) {
      if (i >= report.seen.length || now - report.seen[i]! > REPORT_AGE_OUT_MS) continue;
      const at = i * GAUGES;
      const healthy = report.values[at + HEALTHY]!;
      const total = report.values[at + TOTAL]!;
      const ejected = report.values[at + EJECTED]!;
      view ??= { healthy: 0, total: 0, ejected: 0, reporters: 0 };
      view.reporters++;
      if (healthy > view.healthy) view.healthy = healthy;
      if (total > view.total) view.total = total;
      if (ejected > view.ejected) view.ejected = ejected;
    }
    return view;
  }

  /** Requests sent to the cluster since the last call, summed over the Envoys. */
  takeRequests(name: string): number {
    const i = this.index.get(name);
    if (i === undefined || i >= this.requests.length) return 0;
    const n = this.requests[i]!;
    this.requests[i] = 0;
    return n;
  }

  /** Forgets Envoys silent for REPORT_AGE_OUT_MS. */
  expire(now = performance.now()): void {
    for (const [node, report] of this.nodes) if (now - report.at > REPORT_AGE_OUT_MS) this.nodes.delete(node);
  }

  private reportOf(node: string, now: number): NodeReport {
    let report = this.nodes.get(node);
    if (!report)
      this.nodes.set(
        node,
        (report = { at: now, values: new Float32Array(0), seen: new Float64Array(0), order: [], next: 0 }),
      );
    report.at = now;
    return report;
  }

  /** One MetricFamily: kept if it is one of READ of a policy's cluster, skipped unread otherwise. */
  private family(wire: Wire, report: NodeReport, now: number): void {
    const end = wire.end();
    let stat: Stat | undefined;
    while (wire.pos < end) {
      const tag = wire.varint();
      if (tag === FAMILY_NAME) {
        const nameEnd = wire.end();
        stat = this.statOf(report, wire.bytes, wire.pos, nameEnd);
        if (!stat) break;
        wire.pos = nameEnd;
      } else if (tag === FAMILY_METRIC && stat) {
        this.metric(wire, report, stat.cluster, stat.field, now);
      } else {
        wire.skip(tag);
      }
    }
    wire.pos = end;
  }

  /**
   * The stat a family's name (`message[start, end)`) is, if it is one of READ of a policy's
   * cluster. An Envoy's reports repeat its names in the same order, so the name expected next
   * (or the report's first, when a new report starts) is compared first; a name out of that
   * order is found by its bytes' hash; only a name never seen is decoded.
   */
  private statOf(report: NodeReport, message: Uint8Array, start: number, end: number): Stat | undefined {
    const expected = report.order[report.next];
    if (expected && this.isNamed(expected, message, start, end)) {
      report.next++;
      return expected;
    }
    const first = report.order[0];
    if (first && this.isNamed(first, message, start, end)) {
      report.next = 1;
      return first;
    }
    if (end - start <= PREFIX.length || !startsWith(message, PREFIX, start)) return undefined;
    const hash = fnv1a(message, start, end);
    let stat = this.names.get(hash);
    while (stat && !this.isNamed(stat, message, start, end)) stat = stat.sameHash;
    if (!stat) {
      stat = this.newStat(message.subarray(start, end));
      if (!stat) return undefined;
      stat.sameHash = this.names.get(hash);
      this.names.set(hash, stat);
    }
    report.order[report.next++] = stat;
    return stat;
  }

  /** `cluster.<ns>/<policy>/<member>.<stat>` -> the cluster's index and the stat's place, for a name not seen before. */
  private newStat(name: Uint8Array): Stat | undefined {
    const suffix = SUFFIXES.find(
      (s) => name.length > PREFIX.length + s.bytes.length && startsWith(name, s.bytes, name.length - s.bytes.length),
    );
    if (!suffix) return undefined;
    const end = name.length - suffix.bytes.length;
    // A policy's clusters are ns/policy/member: a name without "/" is Envoy's own (fallback-xds).
    // The member holds no ".": a longer stat that ends the same way is not read.
    const slash = name.lastIndexOf(SLASH, end - 1);
    if (slash < PREFIX.length || name.indexOf(0x2e, slash) !== end) return undefined;
    // A member Envoy resolves by DNS names its stats <member>/dns (DNS_STATS_SUFFIX): the same member.
    const named = utf8.decode(name.subarray(PREFIX.length, end));
    const cluster = named.endsWith(DNS_STATS_SUFFIX) ? named.slice(0, -DNS_STATS_SUFFIX.length) : named;
    let i = this.index.get(cluster);
    if (i === undefined) this.index.set(cluster, (i = this.index.size));
    if (this.arenaUsed + name.length > this.arena.length) {
      const bigger = new Uint8Array(Math.max(2 * this.arena.length, this.arenaUsed + name.length));
      bigger.set(this.arena.subarray(0, this.arenaUsed));
      this.arena = bigger;
    }
    this.arena.set(name, this.arenaUsed);
    const at = this.arenaUsed;
    this.arenaUsed += name.length;
    return { at, length: name.length, cluster: i, field: suffix.field, sameHash: undefined };
  }

  /** Whether `message[start, end)` is the stat's name. */
  private isNamed(stat: Stat, message: Uint8Array, start: number, end: number): boolean {
    if (stat.length !== end - start) return false;
    const arena = this.arena;
    for (let i = 0; i < stat.length; i++) if (arena[stat.at + i] !== message[start + i]) return false;
    return true;
  }

  /** One Metric of a kept family: its gauge's or counter's value (no labels: Envoy emits tags in the name). */
  private metric(wire: Wire, report: NodeReport, cluster: number, field: number, now: number): void {
    const end = wire.end();
    let value: number | undefined;
    while (wire.pos < end) {
      const tag = wire.varint();
      // Gauge (2) and Counter (3) both hold the value in their field 1.
      if (tag === METRIC_GAUGE || tag === METRIC_COUNTER) {
        const inner = wire.end();
        while (wire.pos < inner) {
          const t = wire.varint();
          if (t === VALUE) value = wire.double();
          else wire.skip(t);
        }
      } else {
        wire.skip(tag);
      }
    }
    wire.pos = end;
    if (value === undefined) return;
    if (field === REQUESTS) {
      this.requests = grown(this.requests, cluster + 1);
      this.requests[cluster]! += value;
      return;
    }
    if (cluster >= report.seen.length) {
      // Every cluster named so far at once (an Envoy after the first knows all of them), else a
      // quarter more: doubling would leave up to half of each Envoy's arrays unused.
      const size = Math.max(this.index.size, Math.ceil(report.seen.length * 1.25), 64);
      const values = new Float32Array(size * GAUGES);
      values.set(report.values);
      const seen = new Float64Array(size).fill(-Infinity);
      seen.set(report.seen);
      report.values = values;
      report.seen = seen;
    }
    const at = cluster * GAUGES + field;
    if (report.values[at] !== value || report.seen[cluster] === -Infinity) this.changed = true;
    report.values[at] = value;
    report.seen[cluster] = now;
  }
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array, at: number): boolean {
  for (let i = 0; i < prefix.length; i++) if (bytes[at + i] !== prefix[i]) return false;
  return true;
}

// The tags read (field number << 3 | wire type): StreamMetricsMessage.envoy_metrics (2),
// MetricFamily.name (1) and .metric (4), Metric.gauge (2) and .counter (3), their value (1, a double).
const ENVOY_METRICS = (2 << 3) | 2;
const FAMILY_NAME = (1 << 3) | 2;
const FAMILY_METRIC = (4 << 3) | 2;
const METRIC_GAUGE = (2 << 3) | 2;
const METRIC_COUNTER = (3 << 3) | 2;
const VALUE = (1 << 3) | 1;

/**
 * A cursor over a report's protobuf bytes, for the few reads ingest makes on each of its
 * ~60,000 families: tags and lengths as plain numbers, the rest stepped over. It reads no
 * message it is not told the shape of; BinaryReader (which nodeOf uses) makes a tuple per
 * tag and a copy per skipped field, several times this cost here (docs/benchmarks.md).
 */
class Wire {
  pos = 0;
  readonly bytes: Uint8Array;
  private readonly view: DataView;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** A varint of up to 32 bits (tags and lengths); longer ones are read on and their high bits dropped. */
  varint(): number {
    const bytes = this.bytes;
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      if (this.pos >= bytes.length) throw new Error("truncated stats report");
      const b = bytes[this.pos++]!;
      if (shift < 32) value |= (b & 0x7f) << shift;
      if (b < 0x80) return value >>> 0;
    }
  }

  /** Reads a length and returns where the value it prefixes ends; a value past the message is refused. */
  end(): number {
    const length = this.varint(); // before this.pos is read: the varint moves it
    const end = this.pos + length;
    if (end > this.bytes.length) throw new Error("truncated stats report");
    return end;
  }

  double(): number {
    if (this.pos + 8 > this.bytes.length) throw new Error("truncated stats report");
    const value = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return value;
  }

  /** Steps over the value of a field with this tag. */
  skip(tag: number): void {
    switch (tag & 7) {
      case 0:
        this.varint();
        return;
      case 1:
        this.pos += 8;
        return;
      case 2:
        this.pos = this.end();
        return;
      case 5:
        this.pos += 4;
        return;
      default:
        throw new Error(`unreadable stats report: wire type ${tag & 7}`);
    }
  }
}

function fnv1a(bytes: Uint8Array, start: number, end: number): number {
  let hash = 0x811c9dc5;
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193);
  return hash & 0x3fffffff; // a small integer, which a Map keys fastest
}

function grown(array: Float64Array, size: number): Float64Array {
  if (size <= array.length) return array;
  const bigger = new Float64Array(Math.max(size, array.length * 2));
  bigger.set(array);
  return bigger;
}
