// The FallbackPolicy controller: the whole cluster state in, one ConfigMap and every
// policy's status out.
//
//   any change to policies, Services, EndpointSlices or the ConfigMap
//     -> one queued "sync" (a burst of changes coalesces into one run)
//     -> compile(snapshot) -> render the xDS files
//     -> write the ConfigMap if its content differs (or keep the last good one if too large)
//     -> patch the status of each policy whose status differs, with an Event on a change of readiness
//
// Level-triggered: a sync recomputes from the caches, so a missed or repeated event, a
// restart or a failed write is healed by the next sync. Only the leader syncs.
import { Counter, Gauge } from "prom-client";
import { compile } from "../compile/compile.ts";
import { renderXds } from "../compile/emit.ts";
import type { PolicyResult } from "../compile/results.ts";
import type { CompileOptions, Snapshot } from "../compile/snapshot.ts";
import {
  KeyedBackoff,
  WorkQueue,
  describeError,
  isNotFound,
  objectKey,
  statusMatches,
  type KubeObject,
  type Operator,
  type Store,
} from "../kopf/index.ts";
import { CONFIGMAP_LIMIT_BYTES, OPERATOR_NAME, configMapObject, configMapPatch, configSize, holds, type ConfigMapRef } from "./configmap.ts";
import { CONFIG_MAPS, ENDPOINT_SLICES, POLICIES, SERVICES, inNamespace } from "./resources.ts";
import { desiredStatus, readyOf, type NotWritten } from "./status.ts";

export type FallbackControllerOptions = {
  configMap: ConfigMapRef;
  compile: CompileOptions;
  /** Watch policies, Services and EndpointSlices in this namespace only. */
  watchNamespace?: string;
  /** Largest config written; default the API server's ConfigMap limit. */
  configLimitBytes?: number;
  /** Status patches in flight at once. */
  statusConcurrency?: number;
};

const SYNC = "sync";

export class FallbackController {
  private readonly op: Operator;
  private readonly options: FallbackControllerOptions;
  private readonly policies: Store;
  private readonly services: Store;
  private readonly endpointSlices: Store;
  private readonly configMaps: Store;
  private readonly queue: WorkQueue<string>;
  /** Status written but not yet seen in the cache: by key, the resourceVersion it replaced. */
  private readonly pendingStatus = new Map<string, { before: string | undefined; written: KubeObject }>();
  private readonly writes: Counter;
  private readonly configBytes: Gauge;
  private readonly policyGauge: Gauge;

  constructor(op: Operator, options: FallbackControllerOptions) {
    this.op = op;
    this.options = options;
    const ns = options.watchNamespace;
    const onChange = () => this.queue.add(SYNC);
    // Sync right away on the first change; the queue coalesces whatever arrives meanwhile.
    const watch = { onChange, debounceMs: 5 };
    this.policies = op.watch(inNamespace(POLICIES, ns), watch);
    this.services = op.watch(inNamespace(SERVICES, ns), watch);
    this.endpointSlices = op.watch(inNamespace(ENDPOINT_SLICES, ns), watch);
    this.configMaps = op.watch(
      { ...CONFIG_MAPS, namespace: options.configMap.namespace, fieldSelector: `metadata.name=${options.configMap.name}` },
      watch,
    );
    this.queue = new WorkQueue<string>({
      name: "fallbackpolicy-config",
      process: () => this.sync(),
      rateLimiter: new KeyedBackoff({ baseMs: 200, maxMs: 30_000, jitter: 0.1 }),
      metrics: op.metrics,
      onError: (_key, err) => op.logger.warn({ err: describeError(err) }, "sync failed; retrying with backoff"),
    });
    const registers = [op.metrics.registry];
    this.writes = new Counter({
      name: "fallback_config_writes_total",
      help: "ConfigMap writes with a new Envoy config.",
      registers,
    });
    this.configBytes = new Gauge({ name: "fallback_config_bytes", help: "Size of the last compiled Envoy config.", registers });
    this.policyGauge = new Gauge({
      name: "fallback_policies",
      help: "FallbackPolicies by their Ready condition's status.",
      labelNames: ["ready"],
      registers,
    });
  }

  async stop(): Promise<void> {
    await this.queue.shutdown({ drain: false });
  }

  /** One pass: compile everything, write the config and the statuses that changed. */
  private async sync(): Promise<void> {
    if (!this.op.isLeader) return;
    const started = performance.now();
    const policies = this.policies.list();
    const snapshot: Snapshot = {
      policies,
      services: this.services.list() as unknown as Snapshot["services"],
      endpointSlices: this.endpointSlices.list() as unknown as Snapshot["endpointSlices"],
    };
    const { resources, results } = compile(snapshot, this.options.compile);
    const { files, hash } = renderXds(resources, this.options.compile);
    const size = configSize(files);
    this.configBytes.set(size);

    const limit = this.options.configLimitBytes ?? CONFIGMAP_LIMIT_BYTES;
    let notWritten: NotWritten | undefined;
    if (size > limit) {
      notWritten = {
        reason: "ConfigTooLarge",
        message: `The Envoy config would be ${size} bytes, over the ConfigMap limit of ${limit}; Envoy keeps the last config that fitted.`,
      };
      this.op.logger.error({ bytes: size, limit }, "config too large; keeping the last good config");
    } else {
      await this.writeConfig(files, hash);
    }

    const written = await this.writeStatuses(policies, results, notWritten);
    this.op.logger.debug(
      { policies: policies.length, statusWrites: written, ms: Math.round(performance.now() - started) },
      "synced",
    );
  }

  private async writeConfig(files: Record<string, string>, hash: string): Promise<void> {
    const { namespace, name } = this.options.configMap;
    const existing = this.configMaps.getByName(namespace, name);
    if (holds(existing, files, hash)) return;
    const client = this.op.client;
    if (!existing) {
      // If it exists after all (the cache lags), this fails with 409 and the retry patches it.
      await client.create(CONFIG_MAPS, configMapObject(this.options.configMap, files, hash), OPERATOR_NAME);
    } else {
      await client.patch(CONFIG_MAPS, namespace, name, configMapPatch(existing, files, hash), { fieldManager: OPERATOR_NAME });
    }
    this.writes.inc();
    this.op.logger.info({ configMap: `${namespace}/${name}`, hash, bytes: configSize(files) }, "Envoy config written");
  }

  /** Patches every status that differs; returns how many were written. */
  private async writeStatuses(policies: KubeObject[], results: PolicyResult[], notWritten: NotWritten | undefined): Promise<number> {
    const byKey = new Map(results.map((r) => [r.key, r]));
    const now = new Date();
    const work: Array<() => Promise<void>> = [];
    let ready = 0;
    for (const stored of policies) {
      const key = objectKey(stored);
      const policy = this.latest(key, stored);
      const result = byKey.get(key);
      if (!result) continue;
      const status = desiredStatus(policy, result, this.options.configMap, notWritten, now);
      if (readyOf(status)?.status === "True") ready++;
      if (statusMatches(policy["status"], status)) continue;
      work.push(() => this.writeStatus(policy, status));
    }
    this.policyGauge.set({ ready: "true" }, ready);
    this.policyGauge.set({ ready: "false" }, policies.length - ready);
    await runLimited(work, this.options.statusConcurrency ?? 16);
    return work.length;
  }

  private async writeStatus(policy: KubeObject, status: Record<string, unknown>): Promise<void> {
    const { namespace, name, resourceVersion } = policy.metadata;
    let updated: KubeObject;
    try {
      updated = await this.op.client.patch(POLICIES, namespace, name, { status }, { subresource: "status", fieldManager: OPERATOR_NAME });
    } catch (err) {
      if (isNotFound(err)) return; // deleted meanwhile; the next sync drops it
      throw err;
    }
    this.pendingStatus.set(objectKey(policy), { before: resourceVersion, written: updated });
    await this.announce(updated, policy["status"], status);
  }

  /** The cached policy, unless our own newer status write has not reached the cache yet. */
  private latest(key: string, stored: KubeObject): KubeObject {
    const pending = this.pendingStatus.get(key);
    if (!pending) return stored;
    if (stored.metadata.resourceVersion === pending.before) return { ...stored, status: pending.written["status"] };
    this.pendingStatus.delete(key);
    return stored;
  }

  /** An Event when readiness changes: Warning with the reason when not Ready. */
  private async announce(policy: KubeObject, before: unknown, after: unknown): Promise<void> {
    const was = readyOf(before);
    const now = readyOf(after);
    if (!now || (was?.status === now.status && was.reason === now.reason)) return;
    if (now.status === "True") await this.op.events.normal(policy, "Ready", now.message);
    else await this.op.events.warning(policy, now.reason, now.message);
  }
}

/** Runs the tasks with at most `limit` at once; rejects with the first failure, after all settle. */
async function runLimited(tasks: Array<() => Promise<void>>, limit: number): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (next < tasks.length) {
      const task = tasks[next++]!;
      try {
        await task();
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  if (failure !== undefined) throw failure;
}
