// The FallbackPolicy controller: the whole cluster state in; the Envoy config out to its
// sinks (the xDS server, a ConfigMap), and every policy's status.
//
//   a policy's new generation (not a status write), any change to Services, EndpointSlices
//   (or the ConfigMap)
//     -> the "sync" handler (the framework coalesces a burst of changes into one run)
//     -> compile(snapshot) -> resources
//     -> the xDS server serves them (every replica: an Envoy may stream from any)
//     -> the leader writes the ConfigMap if it differs (or keeps the last good one if too
//        large), at most once per minWriteIntervalMs
//     -> the "status" handler (leader only; also after an Envoy's answer): patches the
//        status of each policy whose status differs (what compile said, joined with what
//        the sinks say: written, acknowledged, rejected), with an Event on a change of
//        readiness
//
//   the Envoys' stats reports (over xDS) -> every second, each policy's live view (who
//     serves, live.ts), adopted at most once per 10 s -> a status pass for the changed ones,
//     with a FailedOver or Recovered Event
//
// Level-triggered: a sync recomputes from the caches, so a missed or repeated event, a
// restart or a failed write is healed by the next sync.
import { Counter, Gauge } from "prom-client";
import { Compiler } from "../compile/compile.ts";
import { TextCache, renderConfigFiles } from "../compile/config-files.ts";
import { backendClusterName, type Resources } from "../compile/envoy/types.ts";
import type { PolicyResult } from "../compile/results.ts";
import type { CompileOptions, Snapshot } from "../compile/snapshot.ts";
import {
  HttpMethod,
  generationChanged,
  isNotFound,
  objectKey,
  patchStatus,
  resourcePath,
  statusMatches,
  type Handler,
  type KubeObject,
  type Operator,
  type Store,
} from "../kopf/index.ts";
import { SETTLE_MS, type PolicyState, type XdsServer } from "../xds/server.ts";
import {
  CONFIGMAP_LIMIT_BYTES,
  OPERATOR_NAME,
  configMapObject,
  configMapUpdate,
  configSize,
  holds,
  type ConfigMapRef,
} from "./configmap.ts";
import { CONFIG_MAPS, ENDPOINT_SLICES, POLICIES, SECRETS, SERVICES, inNamespace } from "./resources.ts";
import { DAMPING_MS, LiveStates, liveView, viewKey, type LiveBackend, type LiveView } from "./live.ts";
import { LiveMetrics } from "./live-metrics.ts";
import { desiredStatus, fallbackActiveOf, readyOf, type Delivery, type NotWritten } from "./status.ts";

export type FallbackControllerOptions = {
  /** The ConfigMap to write the config to; none: no ConfigMap. */
  configMap?: ConfigMapRef;
  /** The xDS server to serve the config with. */
  xds?: XdsServer;
  compile: CompileOptions;
  /** Watch policies, Services and EndpointSlices in this namespace only. */
  watchNamespace?: string;
  /** Watch the credential Secrets (default true). */
  credentials?: boolean;
  /** Largest config written; default the API server's ConfigMap limit. */
  configLimitBytes?: number;
  /** Status patches in flight at once. */
  statusConcurrency?: number;
  /**
   * Least time between two ConfigMap writes; default 2 s. A change after a quiet spell is
   * written at once; during a burst the writes (up to 1 MiB each, to etcd and to every
   * watcher) coalesce to one per interval. Envoy sees them only at the kubelet's next
   * volume sync anyway.
   */
  minWriteIntervalMs?: number;
};

const MIN_WRITE_INTERVAL_MS = 2_000;
/** How often the live state is worked out again from the Envoys' latest reports. */
const LIVE_TICK_MS = 1_000;
/** A report taken this long after an Envoy began to run a config reflects it (it was flushed after). */
const REPORT_SETTLE_MS = 2_000;

export class FallbackController {
  private readonly op: Operator;
  private readonly options: FallbackControllerOptions;
  private readonly compiler: Compiler;
  private readonly views = new CompileViews();
  private readonly texts = new TextCache();
  private readonly policies: Store;
  private readonly services: Store;
  private readonly endpointSlices: Store;
  private readonly secrets: Store | undefined;
  private readonly configMaps: Store | undefined;
  /** Compiles and serves the config (every replica with an xDS server, else the leader). */
  private readonly syncs: Handler;
  /** Writes the statuses (the leader). The two run side by side: a status pass never holds back a change. */
  private readonly statuses: Handler;
  /**
   * Per policy object: the compile result and delivery its status was last found to match,
   * the delivery both as the very parts it was made of and as a string. While the object and
   * the result are the very same and the delivery is too, its status still matches
   * (desiredStatus depends on nothing else), so a pass works out only the statuses that may
   * have changed; the parts' identity lets it skip even making the delivery.
   */
  private readonly statusMatched = new WeakMap<
    KubeObject,
    { result: PolicyResult; parts: DeliveryParts; delivery: string; ready: boolean }
  >();
  /** The last compile's results by key, and its policies' generations by uid, for the status passes. */
  private compiledIndex:
    { results: PolicyResult[]; byKey: Map<string, PolicyResult>; generations: Map<unknown, unknown> } | undefined;
  /** The last compile, with what it was made from. */
  private lastCompile: { input: CompileInput; results: PolicyResult[]; resources: Resources } | undefined;
  /** The last render of the ConfigMap's files, and the resources it was made from. */
  private lastRender: { resources: Resources; files: Record<string, string>; hash: string; size: number } | undefined;
  /** Whether the last sync found the config over the limit. */
  private tooLarge = false;
  /** When the last ConfigMap write finished (performance.now()). */
  private lastWriteAt = -Infinity;
  private readonly writes: Counter;
  private readonly configBytes: Gauge;
  private readonly policyGauge: Gauge;
  /** Per policy, the live view its status shows (only with an xDS server: the Envoys report to it). */
  private readonly live = new LiveStates();
  /** By policy: since when (performance.now()) every connected Envoy has run its current config, without a break seen. */
  private readonly runningSince = new Map<string, number>();
  /** Per compile result, its backends as the live state reads them. */
  private readonly liveBackends = new WeakMap<PolicyResult, LiveBackend[]>();
  private liveTimer: NodeJS.Timeout | undefined;
  private liveMetrics: LiveMetrics | undefined;
  /** When a view waiting out its damping is due to be offered again. */
  private liveDue = Infinity;

  constructor(op: Operator, options: FallbackControllerOptions) {
    this.op = op;
    this.options = options;
    this.compiler = new Compiler(options.compile);
    const ns = options.watchNamespace;
    const configMap = options.configMap;
    const watches = [
      inNamespace(POLICIES, ns),
      inNamespace(SERVICES, ns),
      inNamespace(ENDPOINT_SLICES, ns),
      ...(options.credentials === false ? [] : [inNamespace(SECRETS, ns)]),
      ...(configMap
        ? [{ ...CONFIG_MAPS, namespace: configMap.namespace, fieldSelector: `metadata.name=${configMap.name}` }]
        : []),
    ];
    const [policies, services, endpointSlices, ...rest] = watches.map((r) => op.watch(r));
    this.policies = policies!;
    this.services = services!;
    this.endpointSlices = endpointSlices!;
    this.secrets = options.credentials === false ? undefined : rest.shift();
    this.configMaps = rest.shift();
    const retryBackoff = { baseMs: 200, maxMs: 30_000, jitter: 0.1 };
    // Sync right away on the first change; the framework coalesces whatever arrives meanwhile.
    // With an xDS server every replica compiles, so that each can serve its Envoys.
    // A policy's status or metadata write (ours above all: 10,000 of them after an Envoy
    // connects) changes nothing compile reads, so only a new generation runs a sync.
    const [policyWatch, ...others] = watches;
    this.syncs = op.handler("fallbackpolicy-sync", () => this.sync(), {
      watches: [{ resource: policyWatch!, when: generationChanged }, ...others],
      debounceMs: 5,
      leaderOnly: !options.xds,
      retryBackoff,
    });
    // A status pass can take long (an Envoy connecting changes every policy's
    // status.proxies: 10,000 writes), hence a handler of its own beside the sync.
    this.statuses = op.handler("fallbackpolicy-status", () => this.writeAllStatuses(), { retryBackoff });
    // What the Envoys answer changes statuses: the leader works them out again.
    options.xds?.onFeedback(() => this.statuses.run());
    const registers = [op.metrics.registry];
    this.writes = new Counter({
      name: "fallback_config_writes_total",
      help: "ConfigMap writes with a new Envoy config.",
      registers,
    });
    this.configBytes = new Gauge({
      name: "fallback_config_bytes",
      help: "Size of the last compiled Envoy config.",
      registers,
    });
    this.policyGauge = new Gauge({
      name: "fallback_policies",
      help: "FallbackPolicies by their Ready condition's status.",
      labelNames: ["ready"],
      registers,
    });
    const xds = options.xds;
    if (xds) {
      this.liveMetrics = new LiveMetrics(op.metrics, () => this.liveReadings());
      let reported = false;
      // Only a report that changed a cluster's health can change a view: at 10,000 policies
      // reports come every second from somewhere, and most change nothing but request counts.
      xds.stats.onReport((changed) => (reported ||= changed));
      let lastTick = 0;
      this.liveTimer = setInterval(() => {
        const now = performance.now();
        // On changed reports, on a view due after its damping, and now and then for Envoys that fell silent.
        if (!reported && now < this.liveDue && now - lastTick < 10 * LIVE_TICK_MS) return;
        reported = false;
        lastTick = now;
        this.trackLive(now);
      }, LIVE_TICK_MS);
      this.liveTimer.unref();
    }
  }

  /** Stops the live-state timer; the framework stops the handlers (Operator.stop). */
  stop(): void {
    clearInterval(this.liveTimer);
  }

  /** What the sinks said at the last sync, for the status passes after it. */
  private delivered: { notWritten?: NotWritten } | "deferred" = {};

  /** One pass: compile everything, serve it, write the config; then statuses are due. */
  private async sync(): Promise<void> {
    const xds = this.options.xds;
    const started = performance.now();
    const policies = this.policies.list();
    const { results, resources, reused } = this.compiled(policies);
    const compiled = performance.now();
    if (!reused) xds?.publish(resources);
    const published = performance.now();
    if (!this.op.isLeader) return;

    let configWrite = 0;
    if (this.options.configMap) {
      const outcome = await this.writeConfigMap(this.options.configMap, resources);
      // A deferred write defers the statuses too: Programmed must not claim a config not yet written.
      this.delivered =
        outcome === "deferred" ? "deferred" : outcome.notWritten ? { notWritten: outcome.notWritten } : {};
      if (outcome !== "deferred") configWrite = outcome.ms;
    }
    const done = performance.now();
    this.statuses.run();
    // Where a sync's time goes, for profiling: compile, xDS publish, ConfigMap.
    this.op.logger.debug(
      {
        policies: policies.length,
        ms: Math.round(done - started),
        reused,
        compileMs: Math.round(compiled - started),
        publishMs: Math.round(published - compiled),
        configMapMs: Math.round(configWrite),
      },
      "synced",
    );
  }

  /** A status pass: every policy's status from the last compile and what the sinks say now. */
  private async writeAllStatuses(): Promise<void> {
    if (!this.lastCompile || this.delivered === "deferred") return;
    const started = performance.now();
    const { notWritten } = this.delivered;
    const xds = this.options.xds;
    const states = xds?.policyStates();
    const { results, input } = this.lastCompile;
    if (this.compiledIndex?.results !== results)
      this.compiledIndex = {
        results,
        byKey: new Map(results.map((r) => [r.key, r])),
        generations: new Map(input.policies.map((p) => [p.metadata.uid, p.metadata.generation])),
      };
    const { byKey, generations } = this.compiledIndex;
    // The cache's policies (with our latest status writes), but only as the last compile saw
    // them: one changed since is written by the pass after the sync that compiles it.
    const policies = this.policies.list().filter((p) => generations.get(p.metadata.uid) === p.metadata.generation);
    const written = await this.writeStatuses(
      policies,
      byKey,
      (key) => ({ notWritten, xds: states?.get(key), live: xds ? this.live.get(key)?.view : undefined }),
      ({ notWritten, xds: state, live }) => ({
        ...(this.options.configMap ? { configMap: this.options.configMap } : {}),
        ...(notWritten ? { notWritten } : {}),
        xdsServer: Boolean(xds),
        ...(state ? { xds: state } : {}),
        ...(xds ? { live } : {}),
      }),
    );
    this.op.logger.debug(
      { policies: policies.length, statusWrites: written, ms: Math.round(performance.now() - started) },
      "statuses written",
    );
  }

  /**
   * Works out each programmed policy's live view from the Envoys' reports, and has the
   * statuses of those whose adopted view changed written.
   */
  private trackLive(now: number): void {
    const xds = this.options.xds;
    if (!xds || !this.op.isLeader || !this.lastCompile) return;
    const { stats } = xds;
    stats.expire(now);
    let changed = 0;
    this.liveDue = Infinity;
    const live = new Set<string>();
    const states = xds.policyStates();
    let lastReport = -Infinity;
    for (const { node, serving } of xds.proxies())
      if (serving) lastReport = Math.max(lastReport, stats.lastReportAt(node) ?? -Infinity);
    for (const result of this.lastCompile.results) {
      if (!result.configHash) continue;
      live.add(result.key);
      const backends = this.backendsOf(result);
      const view = liveView(
        backends,
        backends.map((b) => (b.cluster ? stats.cluster(b.cluster, now) : undefined)),
        this.reportedSinceRunning(result.key, states.get(result.key), lastReport, now),
      );
      const outcome = this.live.offer(result.key, view, now);
      if (outcome === "adopted") changed++;
      else if (outcome === "later") this.liveDue = Math.min(this.liveDue, this.live.get(result.key)!.at + DAMPING_MS);
    }
    this.live.retain(live);
    for (const key of this.runningSince.keys()) if (!live.has(key)) this.runningSince.delete(key);
    if (changed) {
      this.op.logger.debug({ policies: changed }, "live state changed");
      this.statuses.run();
    }
  }

  /**
   * Whether an Envoy that runs the policy's current config has reported since it began to:
   * every connected Envoy runs it (so every reporting one does), seen so at least
   * REPORT_SETTLE_MS before the latest report of one of them. A change that Envoys took
   * between two looks keeps the time: its member clusters keep their names, and a member new
   * to the Envoy reads as no host until its first report, as a member no Envoy reported always did.
   */
  private reportedSinceRunning(key: string, state: PolicyState | undefined, lastReport: number, now: number): boolean {
    if (!state || state.connected === 0 || state.acked < state.connected) {
      this.runningSince.delete(key);
      return false;
    }
    let since = this.runningSince.get(key);
    if (since === undefined) this.runningSince.set(key, (since = now));
    return lastReport > since + REPORT_SETTLE_MS;
  }

  /** A policy's backends as the live state reads them: names as in its status, member clusters as Envoy has them. */
  private backendsOf(result: PolicyResult): LiveBackend[] {
    let backends = this.liveBackends.get(result);
    if (!backends) {
      let member = 0;
      backends = result.backends.map((b) => ({
        name: b.name,
        kind: b.kind,
        drained: Boolean(b.drained),
        ...(b.kind === "StaticResponse" ? {} : { cluster: backendClusterName(result.key, member++) }),
        ...(b.resolution === "EndpointSlices" ? { hosts: b.endpoints ?? 0 } : {}),
      }));
      this.liveBackends.set(result, backends);
    }
    return backends;
  }

  /** For /metrics: each programmed policy's backends, with the view its status shows. */
  private *liveReadings() {
    const stats = this.options.xds?.stats;
    if (!stats || !this.lastCompile) return;
    const now = performance.now();
    for (const result of this.lastCompile.results) {
      if (!result.configHash) continue;
      const backends = this.backendsOf(result);
      yield {
        key: result.key,
        backends,
        adopted: this.live.get(result.key)?.view,
        observed: backends.map((b) => (b.cluster ? stats.cluster(b.cluster, now) : undefined)),
        stats,
      };
    }
  }

  /** The compile of the caches as they are now: the last one again if nothing it reads changed. */
  private compiled(policies: KubeObject[]): { results: PolicyResult[]; resources: Resources; reused: boolean } {
    const input: CompileInput = {
      policies,
      services: this.services.list(),
      endpointSlices: this.endpointSlices.list(),
      secrets: this.secrets?.list() ?? [],
    };
    if (this.lastCompile && sameInput(this.lastCompile.input, input)) return { ...this.lastCompile, reused: true };
    const { services, endpointSlices, secrets } = input;
    const snapshot: Snapshot = {
      policies: this.views.of(policies),
      services: services as unknown as Snapshot["services"],
      endpointSlices: endpointSlices as unknown as Snapshot["endpointSlices"],
      secrets: secrets as unknown as Snapshot["secrets"] & object,
    };
    const { resources, results } = this.compiler.compile(snapshot);
    this.lastCompile = { input, results, resources };
    return { results, resources, reused: false };
  }

  /**
   * Writes the config into the ConfigMap if it differs and fits; tells why not when it does
   * not fit, or that the write waits (too soon after the last), when statuses wait too.
   */
  private async writeConfigMap(
    ref: ConfigMapRef,
    resources: Resources,
  ): Promise<{ notWritten?: NotWritten; ms: number } | "deferred"> {
    if (this.lastRender?.resources !== resources) {
      const { files, hash } = renderConfigFiles(resources, this.options.compile, this.texts);
      this.lastRender = { resources, files, hash, size: configSize(files) };
    }
    const { files, hash, size } = this.lastRender;
    this.configBytes.set(size);
    const limit = this.options.configLimitBytes ?? CONFIGMAP_LIMIT_BYTES;
    if (size > limit) {
      // Once per spell, not on every sync (each status write sets one off).
      if (!this.tooLarge)
        this.op.logger.error({ bytes: size, limit }, "config too large; keeping the last good config");
      this.tooLarge = true;
      return {
        notWritten: {
          reason: "ConfigTooLarge",
          // No byte count here: it changes with almost any edit, and every policy left out
          // would get a new status (a write each) every time.
          message: `The Envoy config would be over the ConfigMap limit of ${limit} bytes (its size is the fallback_config_bytes metric); Envoy keeps the last config that fitted.`,
        },
        ms: 0,
      };
    }
    if (this.tooLarge) this.op.logger.info({ bytes: size, limit }, "config fits the ConfigMap again");
    this.tooLarge = false;
    const existing = this.configMaps!.getByName(ref.namespace, ref.name);
    if (holds(existing, files, hash)) return { ms: 0 };
    const wait = this.lastWriteAt + (this.options.minWriteIntervalMs ?? MIN_WRITE_INTERVAL_MS) - performance.now();
    if (wait > 0) {
      // Too soon after the last write: sync again when it is due. The statuses wait
      // too, since Programmed and Ready must not claim a config not yet written.
      this.syncs.runAfter(Math.ceil(wait));
      this.op.logger.debug({ waitMs: Math.round(wait) }, "config write deferred");
      return "deferred";
    }
    const started = performance.now();
    await this.writeConfig(ref, existing, files, hash);
    return { ms: performance.now() - started };
  }

  private async writeConfig(
    ref: ConfigMapRef,
    existing: KubeObject | undefined,
    files: Record<string, string>,
    hash: string,
  ): Promise<void> {
    const { namespace, name } = ref;
    const client = this.op.client;
    let written: KubeObject;
    if (!existing) {
      // If it exists after all (someone else made it), this fails with 409 and the retry updates it.
      written = await client.create(CONFIG_MAPS, configMapObject(ref, files, hash), OPERATOR_NAME);
    } else {
      written = await client.request<KubeObject>(HttpMethod.PUT, resourcePath(CONFIG_MAPS, namespace, name), {
        body: configMapUpdate(existing, files, hash),
        query: { fieldManager: OPERATOR_NAME },
      });
    }
    // A sync right after this write must not create it a second time (409) or write it again.
    this.configMaps!.wrote(written, existing?.metadata.resourceVersion);
    this.lastWriteAt = performance.now();
    this.writes.inc();
    this.op.logger.info({ configMap: `${namespace}/${name}`, hash, bytes: configSize(files) }, "Envoy config written");
  }

  /**
   * Patches every status that differs, a few at a time, as it works them out; returns how
   * many were written. It gives way to other work now and then: an Envoy connecting to
   * 10,000 policies changes every one's status, and a sync must not wait for all of that.
   */
  private async writeStatuses(
    policies: KubeObject[],
    byKey: Map<string, PolicyResult>,
    partsOf: (key: string) => DeliveryParts,
    deliveryOf: (parts: DeliveryParts) => Delivery,
  ): Promise<number> {
    const now = new Date();
    const limit = this.options.statusConcurrency ?? 16;
    const inFlight = new Set<Promise<void>>();
    let failure: unknown;
    let written = 0;
    let ready = 0;
    let waiting = false;
    let looked = 0;
    for (const policy of policies) {
      if (++looked % 200 === 0) await new Promise((done) => setImmediate(done));
      const key = objectKey(policy);
      const result = byKey.get(key);
      if (!result) continue;
      const parts = partsOf(key);
      const matched = this.statusMatched.get(policy);
      if (matched?.result === result && sameParts(matched.parts, parts)) {
        if (matched.ready) ready++;
        continue;
      }
      const delivery = deliveryOf(parts);
      if (delivery.xds && isSettling(delivery.xds)) {
        // Envoys are still to answer for this policy: its status waits for them (or for
        // SETTLE_MS), rather than saying "not acknowledged" for the milliseconds that takes.
        waiting = true;
        continue;
      }
      const said = deliveryKey(delivery);
      if (matched?.result === result && matched.delivery === said) {
        this.statusMatched.set(policy, { ...matched, parts });
        if (matched.ready) ready++;
        continue;
      }
      const status = desiredStatus(policy, result, delivery, now);
      const isReady = readyOf(status)?.status === "True";
      if (isReady) ready++;
      if (statusMatches(policy["status"], status)) {
        this.statusMatched.set(policy, { result, parts, delivery: said, ready: isReady });
        continue;
      }
      const write: Promise<void> = this.writeStatus(policy, status)
        .catch((err) => void (failure ??= err))
        .finally(() => inFlight.delete(write));
      inFlight.add(write);
      written++;
      if (inFlight.size >= limit) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure;
    if (waiting) this.statuses.runAfter(SETTLE_MS);
    this.policyGauge.set({ ready: "true" }, ready);
    this.policyGauge.set({ ready: "false" }, policies.length - ready);
    return written;
  }

  private async writeStatus(policy: KubeObject, status: Record<string, unknown>): Promise<void> {
    const { namespace, name, resourceVersion } = policy.metadata;
    let updated: KubeObject;
    try {
      updated = await patchStatus(this.op.client, POLICIES, policy, status, { fieldManager: OPERATOR_NAME });
    } catch (err) {
      if (isNotFound(err)) return; // deleted meanwhile; the next sync drops it
      throw err;
    }
    // Until the watch delivers it, the cache shows our write: the next pass must not write it again.
    this.policies.wrote(updated, resourceVersion);
    await this.announce(updated, policy["status"], status);
  }

  /** Events: on a change of readiness (Warning with the reason when not Ready), and when traffic moves between backends. */
  private async announce(policy: KubeObject, before: unknown, after: unknown): Promise<void> {
    const was = readyOf(before);
    const now = readyOf(after);
    if (now && (was?.status !== now.status || was.reason !== now.reason)) {
      if (now.status === "True") await this.op.events.normal(policy, "Ready", now.message);
      else await this.op.events.warning(policy, now.reason, now.message);
    }
    const move = trafficMove(before, after);
    if (!move) return;
    if (move.reason === "FailedOver")
      this.liveMetrics?.failovers.inc({ namespace: policy.metadata.namespace ?? "", policy: policy.metadata.name });
    await this.op.events.normal(policy, move.reason, move.message);
  }
}

/**
 * FailedOver when the serving backend changes to another than the primary (from -> to,
 * and why), Recovered when it is the primary again; nothing while the Envoys do not
 * report, or when the first report finds the primary serving.
 */
function trafficMove(
  before: unknown,
  after: unknown,
): { reason: "FailedOver" | "Recovered"; message: string } | undefined {
  const from = fallbackActiveOf(before);
  const to = fallbackActiveOf(after);
  if (!to || to.status === "Unknown" || (from?.activeBackend === to.activeBackend && from?.reason === to.reason))
    return undefined;
  if (to.status === "False") {
    return from?.status === "True"
      ? {
          reason: "Recovered",
          message: `${to.activeBackend} serves again (was ${from.activeBackend ?? "nothing"}): ${to.message}`,
        }
      : undefined;
  }
  const was = from?.status === "True" ? (from.activeBackend ?? "nothing") : to.primary;
  return { reason: "FailedOver", message: `${was} -> ${to.activeBackend ?? "nothing"} (${to.reason}): ${to.message}` };
}

/** What a policy's delivery is made of that changes from pass to pass: each the very object the sinks keep. */
type DeliveryParts = { notWritten: NotWritten | undefined; xds: PolicyState | undefined; live: LiveView | undefined };

const sameParts = (a: DeliveryParts, b: DeliveryParts) =>
  a.notWritten === b.notWritten && a.xds === b.xds && a.live === b.live;

const isSettling = (s: PolicyState) => !s.rejected && s.acked < s.connected && s.pending > 0;

/** Everything of a delivery that desiredStatus reads, as a string to compare. */
function deliveryKey({ notWritten, xdsServer, xds, live }: Delivery): string {
  const rejected = xds?.rejected;
  return `${notWritten?.message ?? ""}|${xdsServer}|${xds ? `${xds.connected}/${xds.acked}` : ""}|${rejected ? `${rejected.node} ${rejected.resource} ${rejected.message}` : ""}|${live ? viewKey(live) : ""}`;
}

type CompileInput = {
  policies: KubeObject[];
  services: KubeObject[];
  endpointSlices: KubeObject[];
  secrets: KubeObject[];
};

/**
 * Whether a compile of `now` would read what the last one read: the same Services and
 * EndpointSlices (an update in the cache is a new object), and each policy the same or with
 * the same identity and generation (the API server bumps it on every spec change, and only
 * then). Our own status writes change none of it, so the sync each of them sets off skips
 * the compile. Lists come in the caches' order, which an update keeps.
 */
function sameInput(last: CompileInput, now: CompileInput): boolean {
  const same = (a: KubeObject[], b: KubeObject[], equal: (x: KubeObject, y: KubeObject) => boolean) =>
    a.length === b.length && a.every((x, i) => x === b[i] || equal(x, b[i]!));
  const samePolicy = (a: KubeObject, b: KubeObject) => {
    const [m, n] = [a.metadata, b.metadata];
    // generation is always set on custom resources; the resourceVersion stands in otherwise.
    return (
      m.uid === n.uid &&
      m.name === n.name &&
      m.namespace === n.namespace &&
      m.creationTimestamp === n.creationTimestamp &&
      (m.generation ?? m.resourceVersion) === (n.generation ?? n.resourceVersion)
    );
  };
  const never = () => false;
  return (
    same(last.services, now.services, never) &&
    same(last.endpointSlices, now.endpointSlices, never) &&
    same(last.secrets, now.secrets, never) &&
    same(last.policies, now.policies, samePolicy)
  );
}

/**
 * Policies as compile reads them: the metadata it uses and the spec, without the status (and
 * annotations, labels...), which it never reads but the validator would deep-copy. A policy
 * keeps its view while its uid and generation do: a status write makes a new cached object
 * (new spec object and all) of the same spec, and a new view would have compile validate,
 * resolve and encode the policy again: after an Envoy connects, every policy's status
 * changes, so that would be a whole compile (docs/benchmarks.md, "Why the code is so").
 */
class CompileViews {
  private readonly views = new Map<string, { generation: unknown; view: KubeObject }>();

  of(policies: KubeObject[]): KubeObject[] {
    const views = policies.map((policy) => this.viewOf(policy));
    if (this.views.size > policies.length) {
      const live = new Set(policies.map((p) => p.metadata.uid));
      for (const uid of this.views.keys()) if (!live.has(uid)) this.views.delete(uid);
    }
    return views;
  }

  private viewOf(policy: KubeObject): KubeObject {
    const { name, namespace, uid, generation, creationTimestamp } = policy.metadata;
    const last = uid === undefined ? undefined : this.views.get(uid);
    if (last && generation !== undefined && last.generation === generation) return last.view;
    const view = {
      apiVersion: policy.apiVersion,
      kind: policy.kind,
      metadata: { name, namespace, uid, generation, creationTimestamp },
      spec: policy["spec"],
    };
    if (uid !== undefined) this.views.set(uid, { generation, view });
    return view;
  }
}
