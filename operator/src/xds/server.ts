// The xDS server: Envoy's Aggregated Discovery Service over gRPC, in both variants
// (DeltaAggregatedResources and StreamAggregatedResources), serving what the last publish
// holds, and telling, per policy, how many connected Envoys run its current resources and
// whether one rejected them.
//
//   publish(resources) -> ResourceCache (encode what changed, less what an Envoy rejected)
//     -> every stream sends its Envoy what it lacks -> ACK / NACK -> policyStates()
import {
  Server,
  ServerCredentials,
  status,
  type ServerDuplexStream,
  type ServerReadableStream,
  type ServiceDefinition,
  type sendUnaryData,
} from "@grpc/grpc-js";
import { fromBinary, toJson, type Message } from "@bufbuild/protobuf";
import { Counter, Gauge } from "prom-client";
import { HTTP_LISTENER, RESOURCE_TYPES, TYPE_URL, type ResourceType, type Resources } from "../compile/envoy/types.ts";
import type { Logger, Metrics } from "../kopf/index.ts";
import { ResourceCache, type Changes, type Rejection } from "./cache.ts";
import { LISTEN_METADATA } from "../compile/envoy/bootstrap.ts";
import { parseHostPort } from "../compile/snapshot.ts";
import { Encoder, versionOf, type Corrupt, type Entry } from "./encode.ts";
import { anyOf, decodeMessage, encodeJson, encodeMessage, messageSchema } from "./envoy-api.ts";
import { ClusterStats } from "./stats.ts";
import {
  DeltaStream,
  SotwStream,
  type DeltaRequest,
  type DeltaResponse,
  type SotwRequest,
  type SotwResponse,
  type Stream,
  type StreamHost,
} from "./stream.ts";
import { sameItems } from "../compile/same-items.ts";

export type XdsTls = {
  cert: Buffer;
  key: Buffer;
  /** Verify Envoys' client certificates against this CA (mTLS). */ clientCA?: Buffer;
};

export type XdsServerOptions = {
  host: string;
  port: number;
  /** Without it, plaintext. */
  tls?: XdsTls;
  logger: Logger;
  metrics?: Metrics;
  /** Names this server in its responses (control_plane.identifier), e.g. the pod name. */
  identifier?: string;
  /** Test seam: see Encoder. */
  corrupt?: Corrupt;
};

/** A policy's standing with the connected Envoys. */
export type PolicyState = {
  /** Envoys connected (that got as far as acknowledging a listener and routes). */
  connected: number;
  /** Of those, how many run the policy's current resources. */
  acked: number;
  /** Of those that do not, how many are still to answer a response (for at most SETTLE_MS): they may yet. */
  pending: number;
  /** An Envoy rejected the policy's current resources: its words. */
  rejected?: Rejection;
};

const SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService";
const DELTA_REQUEST = "envoy.service.discovery.v3.DeltaDiscoveryRequest";
const DELTA_RESPONSE = "envoy.service.discovery.v3.DeltaDiscoveryResponse";
const SOTW_REQUEST = "envoy.service.discovery.v3.DiscoveryRequest";
const SOTW_RESPONSE = "envoy.service.discovery.v3.DiscoveryResponse";
const LISTENER = "envoy.config.listener.v3.Listener";

type Call<Req> = ServerDuplexStream<Req, Uint8Array>;

export class XdsServer implements StreamHost {
  private readonly options: XdsServerOptions;
  /** What the Envoys' stats say of each cluster (their metrics_service sinks report here). */
  readonly stats = new ClusterStats();
  private readonly cache: ResourceCache;
  private readonly grpc: Server;
  private readonly streams = new Map<Stream, Call<unknown>>();
  private readonly listeners = new Set<() => void>();
  private readonly listenerVariants = new Map<string, { key: string; entries: Map<string, Entry> }>();
  private feedbackTimer: NodeJS.Timeout | undefined;
  private published = false;
  /**
   * Each policy's standing as last worked out, and the policies it may have changed for
   * since ("all" when the connected Envoys, their settling or a rejection changed).
   */
  private readonly states = new Map<string, PolicyState>();
  private statesStale: Set<string> | "all" = "all";
  private statesBasis: { serving: Stream[]; busy: boolean[] } = { serving: [], busy: [] };
  private port = 0;
  private readonly logger: Logger;
  private readonly connections?: Gauge<"protocol">;
  private readonly responses?: Counter<"type">;
  private readonly resourcesSent?: Counter<"type">;
  private readonly rejections?: Counter<"type">;

  constructor(options: XdsServerOptions) {
    this.options = options;
    this.logger = options.logger;
    this.cache = new ResourceCache(new Encoder(options.corrupt ? { corrupt: options.corrupt } : {}));
    // Envoy's stream lives as long as Envoy does; keepalive finds an Envoy gone without a FIN.
    // Envoy answers pings on the thread that applies config, which can take a minute for a
    // large one: the timeout leaves it that, or a busy Envoy would be cut off mid-apply.
    this.grpc = new Server({
      "grpc.keepalive_time_ms": 60_000,
      "grpc.keepalive_timeout_ms": 180_000,
      "grpc.max_receive_message_length": 16 * 1024 * 1024,
    });
    this.grpc.addService(serviceDefinition(), {
      DeltaAggregatedResources: (call: Call<DeltaRequest>) => this.serve(call, new DeltaStream(this)),
      StreamAggregatedResources: (call: Call<SotwRequest>) => this.serve(call, new SotwStream(this)),
    });
    this.grpc.addService(metricsServiceDefinition(), {
      StreamMetrics: (call: ServerReadableStream<Uint8Array, Uint8Array>, done: sendUnaryData<Uint8Array>) =>
        this.takeStats(call, done),
    });
    const registers = options.metrics ? [options.metrics.registry] : undefined;
    if (registers) {
      this.connections = new Gauge({
        name: "fallback_xds_connections",
        help: "Envoys connected over ADS.",
        labelNames: ["protocol"],
        registers,
      });
      this.responses = new Counter({
        name: "fallback_xds_responses_total",
        help: "xDS responses sent, by resource type.",
        labelNames: ["type"],
        registers,
      });
      this.resourcesSent = new Counter({
        name: "fallback_xds_resources_sent_total",
        help: "Resources sent to Envoys (removals included), by type.",
        labelNames: ["type"],
        registers,
      });
      this.rejections = new Counter({
        name: "fallback_xds_rejections_total",
        help: "xDS responses an Envoy rejected (NACK), by resource type.",
        labelNames: ["type"],
        registers,
      });
    }
  }

  /** Listens; resolves with the port (useful when asked for port 0). */
  async start(): Promise<number> {
    const { host, port, tls } = this.options;
    const credentials = tls
      ? ServerCredentials.createSsl(
          tls.clientCA ?? null,
          [{ private_key: tls.key, cert_chain: tls.cert }],
          Boolean(tls.clientCA),
        )
      : ServerCredentials.createInsecure();
    const address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
    this.port = await new Promise<number>((done, fail) =>
      this.grpc.bindAsync(address, credentials, (err, bound) => (err ? fail(err) : done(bound))),
    );
    this.logger.info(
      { address: `${host}:${this.port}`, tls: tls ? (tls.clientCA ? "mutual" : "server") : "none" },
      "xDS server listening",
    );
    return this.port;
  }

  get boundPort(): number {
    return this.port;
  }

  /** Ends every stream (Envoys keep what they have and reconnect elsewhere) and stops. */
  async stop(): Promise<void> {
    clearTimeout(this.feedbackTimer);
    for (const call of this.streams.values()) call.end();
    await new Promise<void>((done) => this.grpc.tryShutdown(() => done()));
    this.grpc.forceShutdown();
  }

  /**
   * Serves a new compile output. Streams opened before the first publish wait for it: an
   * Envoy must never be told its resources were removed because the caches were empty.
   */
  publish(resources: Resources): void {
    const changes = this.cache.publish(resources);
    if (!this.published) {
      this.published = true;
      // Envoys that asked before there was anything to serve get their answers now.
      for (const [stream, requests] of this.early) for (const request of requests) this.handle(stream, request);
      this.early.clear();
      for (const stream of this.streams.keys()) this.send(stream, stream.changed(allOf(this.cache)));
    } else if (changes.size) {
      this.broadcast(changes);
    }
    this.feedbackChanged();
  }

  /** Called (debounced) whenever what policyStates() says may have changed. */
  onFeedback(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Every published policy's standing with the connected Envoys. Worked out again only for
   * the policies whose entries, or what an Envoy has of them, changed since the last call
   * (a status pass asks after every ACK; docs/benchmarks.md, "Why the code is so").
   * `afresh` works out every one (the tests check that both ways agree).
   */
  policyStates(options: { afresh?: boolean } = {}): ReadonlyMap<string, PolicyState> {
    const serving = [...this.streams.keys()].filter((s) => s.serving());
    const now = performance.now();
    const busy = serving.map((s) => {
      const since = s.busySince();
      return since !== undefined && now - since < SETTLE_MS;
    });
    const basis = this.statesBasis;
    if (options.afresh || !sameItems(basis.serving, serving) || this.cache.hasRejections) this.statesStale = "all";
    else if (!sameItems(basis.busy, busy) && this.statesStale !== "all") {
      // An Envoy began or ended waiting for an answer: only the policies some Envoy lacks
      // count it as pending (each push makes one wait, so this comes with every change).
      for (const [owner, state] of this.states) if (state.acked < state.connected) this.statesStale.add(owner);
    }
    this.statesBasis = { serving, busy };
    const touched = this.cache.takeTouched();
    let owners: Iterable<string>;
    if (this.statesStale === "all") {
      this.states.clear();
      owners = this.cache.owners();
    } else {
      for (const owner of touched) this.statesStale.add(owner);
      owners = this.statesStale;
    }
    for (const owner of owners) {
      const entries = this.cache.entriesOf(owner);
      if (!entries.length) {
        this.states.delete(owner);
        continue;
      }
      let rejected: Rejection | undefined;
      for (const entry of entries) if ((rejected = this.cache.rejectionOf(entry))) break;
      let acked = 0;
      let pending = 0;
      serving.forEach((s, i) => {
        if (entries.every((e) => s.has(e))) acked++;
        else if (busy[i]) pending++;
      });
      this.states.set(owner, { connected: serving.length, acked, pending, ...(rejected ? { rejected } : {}) });
    }
    this.statesStale = new Set();
    return this.states;
  }

  /** What an Envoy has of these entries changed: their policies' standing may have. */
  private restate(entries: Entry[]): void {
    const stale = this.statesStale;
    if (stale === "all") return;
    for (const entry of entries) for (const owner of entry.owners) stale.add(owner);
  }

  /** The Envoys connected now: node id and protocol. */
  proxies(): { node: string; protocol: "delta" | "sotw"; serving: boolean }[] {
    return [...this.streams.keys()].map((s) => ({
      node: s.node?.id ?? "",
      protocol: s.protocol,
      serving: s.serving(),
    }));
  }

  // ---- StreamHost ---------------------------------------------------------------------

  entries(type: ResourceType, stream: Stream): ReadonlyMap<string, Entry> {
    if (!this.published) return EMPTY;
    const served = this.cache.entries(type);
    const listen = type === "listener" ? stream.node?.metadata?.[LISTEN_METADATA] : undefined;
    return typeof listen === "string" ? this.listenersAt(listen, served) : served;
  }

  /**
   * The listeners for an Envoy that asked to listen elsewhere (fallbackctl bootstrap
   * --listen: several Envoys on one host), made once per served listener and address.
   */
  private listenersAt(listen: string, served: ReadonlyMap<string, Entry>): ReadonlyMap<string, Entry> {
    const at = parseHostPort(listen);
    if (!at) return served;
    const key = `${[...served.values()].map((e) => e.version).join(",")} ${listen}`;
    let variant = this.listenerVariants.get(listen);
    if (variant?.key !== key) {
      const entries = new Map<string, Entry>();
      for (const [name, entry] of served) {
        // Only the HTTP listener binds an address; internal listeners have none.
        if (name !== HTTP_LISTENER) {
          entries.set(name, entry);
          continue;
        }
        const json = decodeMessage(LISTENER, entry.bytes) as { address?: unknown };
        json.address = { socket_address: { address: at.address, port_value: at.port } };
        const bytes = encodeJson(LISTENER, json);
        entries.set(name, { ...entry, bytes, version: versionOf(bytes) });
      }
      this.listenerVariants.set(listen, (variant = { key, entries }));
    }
    return variant.entries;
  }

  accepted(_stream: Stream, entries: Entry[]): void {
    for (const entry of entries) this.cache.accept(entry);
    this.restate(entries);
    this.feedbackChanged();
  }

  dropped(_stream: Stream, entries: Entry[]): void {
    this.restate(entries);
    this.feedbackChanged();
  }

  answered(stream: Stream, type: ResourceType, sentAt: number, nack: boolean): void {
    this.release(stream, TYPE_URL[type]);
    if (nack) this.rejections?.inc({ type: typeLabel(TYPE_URL[type]) });
    // How long Envoy took to apply a response (with its trip back): the benchmark reads these.
    this.logger.debug(
      { node: stream.node?.id, type: typeLabel(TYPE_URL[type]), ms: Math.round(performance.now() - sentAt), nack },
      "xDS response answered",
    );
  }

  rejected(stream: Stream, type: ResourceType, blamed: Entry[], message: string): void {
    const node = stream.node?.id ?? "";
    this.logger.warn(
      {
        node,
        type,
        resources: blamed.map((e) => e.name),
        owners: [...new Set(blamed.flatMap((e) => e.owners))],
        error: message,
      },
      "Envoy rejected xDS resources",
    );
    const changes: Changes = new Map();
    for (const entry of blamed)
      merge(changes, this.cache.reject(entry, { node, resource: `${type} ${entry.name}`, message }));
    // After this request is handled: the stream that asked must first take its own answer.
    if (changes.size) queueMicrotask(() => this.broadcast(changes));
    this.statesStale = "all";
    this.feedbackChanged();
  }

  // ---- streams ------------------------------------------------------------------------

  private serve(call: Call<DeltaRequest> | Call<SotwRequest>, stream: DeltaStream | SotwStream): void {
    this.streams.set(stream, call as Call<unknown>);
    this.connections?.inc({ protocol: stream.protocol });
    const peer = call.getPeer();
    let announced = false;
    call.on("data", (request: DeltaRequest & SotwRequest) => {
      const node = stream.node ?? request.node;
      if (!announced && node) {
        announced = true;
        this.logger.info({ node: node.id, cluster: node.cluster, protocol: stream.protocol, peer }, "Envoy connected");
      }
      // Before the first publish there is nothing to serve, and a stream that worked out
      // its answers from nothing would think them sent: the request waits for the publish.
      if (this.published) this.handle(stream, request);
      else this.early.set(stream, [...(this.early.get(stream) ?? []), request]);
    });
    const gone = () => {
      this.early.delete(stream);
      if (!this.streams.delete(stream)) return;
      this.release(stream);
      this.connections?.dec({ protocol: stream.protocol });
      this.logger.info({ node: stream.node?.id, protocol: stream.protocol, peer }, "Envoy disconnected");
      this.feedbackChanged();
    };
    call.on("end", () => {
      gone();
      call.end();
    });
    call.on("error", gone);
    call.on("cancelled", gone);
    call.on("close", gone);
  }

  /** One Envoy's stats stream: a report every flush interval, for as long as it runs. */
  private takeStats(call: ServerReadableStream<Uint8Array, Uint8Array>, done: sendUnaryData<Uint8Array>): void {
    let node: string | undefined;
    call.on("data", (message: Uint8Array) => {
      try {
        // The first message names the Envoy; an Envoy that does not is known by its address.
        node ??= ClusterStats.nodeOf(message) ?? call.getPeer();
        this.stats.ingest(node, message);
      } catch (err) {
        this.logger.warn(
          { err: { message: (err as Error).message }, node },
          "unreadable stats report; ending the stream",
        );
        done({ code: status.INVALID_ARGUMENT, details: (err as Error).message });
      }
    });
    // Its report stays until it ages out: an Envoy reconnecting must not look gone for a moment.
    call.on("end", () => done(null, new Uint8Array(0)));
    call.on("error", () => {});
  }

  private broadcast(changes: Changes): void {
    for (const stream of this.streams.keys()) this.send(stream, stream.changed(changes));
  }

  /**
   * Sends responses, within a budget of bytes sent and not yet answered: a response beyond
   * it waits until Envoys answer earlier ones. Envoys connecting at once would otherwise
   * each have a whole config waiting in the server's buffers (docs/benchmarks.md, "xDS");
   * with the budget, the full syncs go a few at a time. One response is always let
   * through, however large.
   */
  private send(stream: Stream, responses: unknown[]): void {
    if (!this.streams.has(stream) || !this.published) return;
    for (const response of responses) {
      const { typeUrl, resources } = response as { typeUrl: string; resources: Entry[] };
      const size = resources.reduce((n, e) => n + e.bytes.length, 0);
      if (this.waiting.length || (this.outstanding > 0 && this.outstanding + size > SEND_BUDGET_BYTES))
        this.waiting.push({ stream, response, size });
      else this.write(stream, response, typeUrl, size);
    }
  }

  /** Bytes sent and not yet answered, by stream and type; their sum; and what waits for room. */
  private readonly unanswered = new Map<Stream, Map<string, number>>();
  /** Requests that came before the first publish, by stream, in order. */
  private readonly early = new Map<Stream, (DeltaRequest & SotwRequest)[]>();

  /** One request of a stream: the answers it calls for go out; a request it cannot take ends the stream. */
  private handle(stream: Stream, request: DeltaRequest & SotwRequest): void {
    const call = this.streams.get(stream);
    if (!call) return;
    try {
      this.send(stream, (stream as DeltaStream).request(request));
    } catch (err) {
      this.logger.error(
        { err: { message: (err as Error).message }, node: stream.node?.id },
        "xDS request failed; ending the stream",
      );
      call.emit("error", { code: status.INTERNAL, details: (err as Error).message });
      call.end();
    }
  }
  private outstanding = 0;
  private readonly waiting: { stream: Stream; response: unknown; size: number }[] = [];

  /** Envoy answered (or left): its response's bytes no longer count, and waiting ones may go. */
  private release(stream: Stream, typeUrl?: string): void {
    const byType = this.unanswered.get(stream);
    if (byType) {
      for (const [t, size] of byType)
        if (typeUrl === undefined || t === typeUrl) ((this.outstanding -= size), byType.delete(t));
      if (!byType.size) this.unanswered.delete(stream);
    }
    if (typeUrl === undefined)
      for (let i = this.waiting.length - 1; i >= 0; i--)
        if (this.waiting[i]!.stream === stream) this.waiting.splice(i, 1);
    while (this.waiting.length) {
      const next = this.waiting[0]!;
      if (this.outstanding > 0 && this.outstanding + next.size > SEND_BUDGET_BYTES) break;
      this.waiting.shift();
      if (this.streams.has(next.stream))
        this.write(next.stream, next.response, (next.response as { typeUrl: string }).typeUrl, next.size);
    }
  }

  private write(stream: Stream, response: unknown, typeUrl: string, size: number): void {
    const call = this.streams.get(stream)!;
    let byType = this.unanswered.get(stream);
    if (!byType) this.unanswered.set(stream, (byType = new Map()));
    byType.set(typeUrl, size);
    this.outstanding += size;
    const started = performance.now();
    const bytes =
      stream.protocol === "delta"
        ? this.encodeDelta(response as DeltaResponse)
        : this.encodeSotw(response as SotwResponse);
    const { resources, removed } = response as { resources: Entry[]; removed?: string[] };
    this.responses?.inc({ type: typeLabel(typeUrl) });
    this.resourcesSent?.inc({ type: typeLabel(typeUrl) }, resources.length + (removed?.length ?? 0));
    call.write(bytes);
    this.logger.debug(
      {
        node: stream.node?.id,
        type: typeLabel(typeUrl),
        resources: resources.length,
        removed: removed?.length ?? 0,
        bytes: bytes.length,
        ms: Math.round(performance.now() - started),
      },
      "xDS response sent",
    );
  }

  private encodeDelta(r: DeltaResponse): Uint8Array {
    return encodeMessage(DELTA_RESPONSE, {
      typeUrl: r.typeUrl,
      nonce: r.nonce,
      resources: r.resources.map((e) => ({ name: e.name, version: e.version, resource: anyOf(r.typeUrl, e.bytes) })),
      removedResources: r.removed,
      ...this.controlPlane(),
    });
  }

  private encodeSotw(r: SotwResponse): Uint8Array {
    return encodeMessage(SOTW_RESPONSE, {
      typeUrl: r.typeUrl,
      nonce: r.nonce,
      versionInfo: r.version,
      resources: r.resources.map((e) => anyOf(r.typeUrl, e.bytes)),
      ...this.controlPlane(),
    });
  }

  private controlPlane() {
    return this.options.identifier ? { controlPlane: { identifier: this.options.identifier } } : {};
  }

  private feedbackChanged(): void {
    if (this.feedbackTimer || !this.listeners.size) return;
    // ACKs of one push arrive close together: tell once for them all.
    this.feedbackTimer = setTimeout(() => {
      this.feedbackTimer = undefined;
      for (const listener of this.listeners) listener();
    }, 20);
  }
}

const EMPTY: ReadonlyMap<string, Entry> = new Map();
/** Bytes of responses sent and not yet answered, over all streams, before more wait (see send). */
const SEND_BUDGET_BYTES = 64 * 1024 * 1024;
/** How long an Envoy may take to answer a response before a policy it has not acknowledged is reported as such. */
export const SETTLE_MS = 10_000;

function allOf(cache: ResourceCache): Changes {
  return new Map(RESOURCE_TYPES.map((t) => [t, new Set(cache.entries(t).keys())]));
}

function merge(into: Changes, more: Changes): void {
  for (const [type, names] of more) {
    const set = into.get(type);
    if (set) for (const n of names) set.add(n);
    else into.set(type, new Set(names));
  }
}

const typeLabel = (typeUrl: string) => typeUrl.slice(typeUrl.lastIndexOf(".") + 1);

/** Envoy's MetricsService: client streaming; reports are read by ClusterStats, the answer is empty. */
function metricsServiceDefinition(): ServiceDefinition {
  const raw = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    StreamMetrics: {
      path: "/envoy.service.metrics.v3.MetricsService/StreamMetrics",
      requestStream: true,
      responseStream: false,
      requestDeserialize: (bytes: Buffer) => bytes,
      requestSerialize: raw,
      responseSerialize: raw,
      responseDeserialize: (bytes: Buffer) => bytes,
    },
  };
}

/** The ADS service, its messages (de)coded with Envoy's descriptors. Responses arrive encoded. */
function serviceDefinition(): ServiceDefinition {
  const nodeSchema = messageSchema("envoy.config.core.v3.Node");
  const method = (name: string, request: string) => {
    const schema = messageSchema(request);
    return {
      path: `/${SERVICE}/${name}`,
      requestStream: true,
      responseStream: true,
      requestDeserialize: (bytes: Buffer) => {
        const message = fromBinary(schema, bytes) as unknown as { node?: Message };
        // The node as plain JSON: its metadata is a Struct, far handier so.
        return message.node ? { ...message, node: toJson(nodeSchema, message.node) } : message;
      },
      requestSerialize: () => Buffer.alloc(0),
      responseSerialize: (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      responseDeserialize: (bytes: Buffer) => bytes,
    };
  };
  return {
    DeltaAggregatedResources: method("DeltaAggregatedResources", DELTA_REQUEST),
    StreamAggregatedResources: method("StreamAggregatedResources", SOTW_REQUEST),
  };
}
