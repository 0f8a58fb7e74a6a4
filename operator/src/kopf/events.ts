// Kubernetes Events (events.k8s.io/v1) about the objects an operator handles: what
// `kubectl describe` and `kubectl events` show a user.
//
// Repeats are aggregated the way client-go's events library does it: the first
// occurrence creates an Event; the same (object, type, reason, action, message) again
// within `aggregateWindowMs` only bumps series.count and series.lastObservedTime on
// that Event, written at most once per `seriesFlushMs`. A reconcile loop that fails
// every few seconds thus produces one Event with a growing count, not thousands.
//
// Recording is best effort: it never throws, since losing an Event must not fail the
// reconcile that reported it.

import { V1MicroTime } from "./kube.ts";
import { randomBytes } from "node:crypto";
import type { KubeClient, KubeObject, ResourceRef } from "./client.ts";
import { describe, isNotFound } from "./errors.ts";
import type { Logger } from "./log.ts";

export type EventType = "Normal" | "Warning";

export interface EventRecorderOptions {
  /** Name of the controller, e.g. "fallback.dev/operator" (reportingController). */
  reportingController: string;
  /** This replica, e.g. the pod name (reportingInstance). */
  reportingInstance: string;
  logger: Logger;
  /** How long a repeat joins the previous Event's series. Default 6 min, as client-go. */
  aggregateWindowMs?: number;
  /** Minimum time between two series updates of one Event. Default 30 s. */
  seriesFlushMs?: number;
}

interface Series {
  name: string;
  namespace: string;
  count: number;
  lastObserved: number;
  lastWritten: number;
  timer?: NodeJS.Timeout;
}

const MAX_TRACKED = 4096;
const EVENTS: ResourceRef = { group: "events.k8s.io", version: "v1", plural: "events", kind: "Event" };

export class EventRecorder {
  private readonly client: KubeClient;
  private readonly options: Required<EventRecorderOptions>;
  private readonly series = new Map<string, Series>();

  /** Events go through the operator's client: its one connection pool (see client.ts). */
  constructor(client: KubeClient, options: EventRecorderOptions) {
    this.client = client;
    this.options = { aggregateWindowMs: 6 * 60_000, seriesFlushMs: 30_000, ...options };
  }

  normal(obj: KubeObject, reason: string, message: string, action = reason): Promise<void> {
    return this.record(obj, "Normal", reason, message, action);
  }

  warning(obj: KubeObject, reason: string, message: string, action = reason): Promise<void> {
    return this.record(obj, "Warning", reason, message, action);
  }

  async record(obj: KubeObject, type: EventType, reason: string, message: string, action = reason): Promise<void> {
    const key = [
      obj.metadata.uid ?? `${obj.metadata.namespace}/${obj.metadata.name}`,
      type,
      reason,
      action,
      message,
    ].join("\u0000");
    const now = Date.now();
    const known = this.series.get(key);
    try {
      if (known && now - known.lastObserved < this.options.aggregateWindowMs) {
        known.count++;
        known.lastObserved = now;
        if (now - known.lastWritten >= this.options.seriesFlushMs) await this.writeSeries(key, known);
        else
          known.timer ??= setTimeout(
            () => void this.writeSeries(key, known),
            known.lastWritten + this.options.seriesFlushMs - now,
          ).unref();
        return;
      }
      await this.create(key, obj, type, reason, message, action);
    } catch (err) {
      this.options.logger.warn({ err: describe(err), reason }, "could not record event");
    }
  }

  /** Drops pending series updates (call on shutdown). */
  close(): void {
    for (const s of this.series.values()) clearTimeout(s.timer);
    this.series.clear();
  }

  private async create(key: string, obj: KubeObject, type: EventType, reason: string, message: string, action: string) {
    const namespace = obj.metadata.namespace || "default";
    const name = `${obj.metadata.name}.${randomBytes(8).toString("hex")}`;
    await this.client.create(EVENTS, {
      metadata: { name, namespace },
      eventTime: new V1MicroTime(), // serialises with the microseconds MicroTime needs
      type,
      reason,
      action,
      note: message.length > 1024 ? `${message.slice(0, 1021)}...` : message,
      reportingController: this.options.reportingController,
      reportingInstance: this.options.reportingInstance,
      regarding: {
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        name: obj.metadata.name,
        namespace: obj.metadata.namespace,
        uid: obj.metadata.uid,
        resourceVersion: obj.metadata.resourceVersion,
      },
    });
    const now = Date.now();
    this.series.delete(key);
    this.series.set(key, { name, namespace, count: 1, lastObserved: now, lastWritten: now });
    // Oldest first in a Map: forget the least recently created series beyond the bound.
    while (this.series.size > MAX_TRACKED) {
      const oldest = this.series.keys().next().value as string;
      clearTimeout(this.series.get(oldest)?.timer);
      this.series.delete(oldest);
    }
  }

  private async writeSeries(key: string, s: Series): Promise<void> {
    clearTimeout(s.timer);
    s.timer = undefined;
    s.lastWritten = Date.now();
    try {
      await this.client.patch(EVENTS, s.namespace, s.name, {
        series: { count: s.count, lastObservedTime: new V1MicroTime(s.lastObserved) },
      });
    } catch (err) {
      // Events expire (1 h by default); the next occurrence starts a new one.
      if (isNotFound(err)) this.series.delete(key);
      else this.options.logger.warn({ err: describe(err) }, "could not update event series");
    }
  }
}
