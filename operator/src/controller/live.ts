// Who serves a policy's traffic right now, from the Envoys' own stats (xds/stats.ts), and
// the transitions the status reports (api.md: activeBackend, backends[].healthy,
// FallbackActive).
//
//   per member cluster: healthy hosts, combined over the Envoys, of the hosts it has (those
//   the operator sends, or those Envoy found by DNS)
//     -> liveView: each backend's share of new requests, as Envoy's aggregate cluster splits
//        them, and so the active backend and the FallbackActive condition
//     -> LiveStates: a new view is adopted at most once per DAMPING_MS per policy, so a
//        flapping backend cannot set off a storm of status writes
//
// No single Envoy stat says which tier serves. Envoy's aggregate cluster treats its
// members as priorities: a member whose hosts are a fraction h healthy is given
// min(1, h x overprovisioning factor 1.4) of the load left, the rest spills to the next,
// and when the members' health sums to less than 100 % the load is spread in proportion to
// it. With the panic threshold at 0 (every cluster of a policy), a member with no healthy
// host gets nothing; with none anywhere, the request fails with "no healthy upstream" and
// the static answer, if any, is served.
import type { BackendStatus } from "../api/schema.ts";
import type { ClusterView } from "../xds/stats.ts";

/**
 * A backend as the live state reads it: its status name and kind, its member cluster (none
 * for the static answer), and its hosts where the operator knows them (the endpoints it sends
 * Envoy). Envoy reports the host count only of a member it resolves by DNS (KEPT_STATS).
 */
export type LiveBackend = {
  name: string;
  kind: BackendStatus["kind"];
  cluster?: string;
  drained: boolean;
  hosts?: number;
};

export type FallbackActive = {
  status: "True" | "False" | "Unknown";
  reason: "PrimaryServing" | "PrimaryUnavailable" | "PrimaryDrained" | "AllBackendsDown" | "NoReports";
  message: string;
};

export type LiveView = {
  /** The backend that takes most new requests; absent without reports, or with nothing left to serve. */
  activeBackend?: string;
  condition: FallbackActive;
  /** By backend (as in status.backends): healthy endpoints, where an Envoy reports the backend. */
  healthy: (number | undefined)[];
};

/** Envoy's default overprovisioning factor (ClusterLoadAssignment.policy), in percent. */
const OVERPROVISIONING = 140;

/** A member cluster an Envoy has but sends no stats of: it has never had a host (see liveView). */
const NEVER_HAD_HOSTS: ClusterView = { healthy: 0, total: 0, ejected: 0, reporters: 0 };

/**
 * The view of one policy, from what the Envoys report of each of its backends' clusters
 * (undefined: none reports it). Envoy sends only the stats it has ever set, and a cluster's
 * host counts are set when its hosts change: a cluster that never had a host sends none.
 * `reportedSinceRunning` says an Envoy running the policy's current config has reported
 * since, so that a member it says nothing of is one with no host, not one it lacks.
 */
export function liveView(
  backends: LiveBackend[],
  observed: (ClusterView | undefined)[],
  reportedSinceRunning = false,
): LiveView {
  const seenOf = (i: number) => observed[i] ?? (reportedSinceRunning ? NEVER_HAD_HOSTS : undefined);
  const members = backends
    .map((b, i) => ({ ...b, index: i, seen: b.cluster ? seenOf(i) : undefined }))
    .filter((b) => b.cluster);
  const healthy = backends.map((b, i) => (b.cluster ? seenOf(i)?.healthy : undefined));
  if (!members.length || members.every((m) => !m.seen)) {
    return {
      condition: { status: "Unknown", reason: "NoReports", message: "No Envoy reports this policy's backends yet." },
      healthy,
    };
  }
  const health = members.map((m) => {
    // Envoy's count where it sends one (a member it resolves by DNS), else the operator's.
    const hosts = m.seen?.total || m.hosts || 0;
    return m.seen && hosts > 0 ? Math.min(100, (OVERPROVISIONING * m.seen.healthy) / hosts) : 0;
  });
  const shares = loadShares(health);
  const primary = backends[0]!;
  const staticAnswer = backends.find((b) => b.kind === "StaticResponse");
  if (shares.every((s) => s === 0)) {
    return {
      ...(staticAnswer ? { activeBackend: staticAnswer.name } : {}),
      condition: {
        status: "True",
        reason: "AllBackendsDown",
        message: `No backend has a healthy endpoint; ${staticAnswer ? "the static answer is served" : "requests fail with 503"}.`,
      },
      healthy,
    };
  }
  let top = 0;
  shares.forEach((s, i) => s > shares[top]! && (top = i));
  const active = members[top]!;
  const split = members
    .map((m, i) => ({ name: m.name, share: shares[i]! }))
    .filter((s) => s.share > 0)
    .map((s) => `${s.name} ${Math.round(s.share)}%`)
    .join(", ");
  if (active.index === 0) {
    return {
      activeBackend: primary.name,
      condition: { status: "False", reason: "PrimaryServing", message: `The primary serves (new requests: ${split}).` },
      healthy,
    };
  }
  // No counts here: they move with every ejection, and each move would be a status write.
  const why = primary.drained ? "is drained" : "has no healthy endpoint";
  return {
    activeBackend: active.name,
    condition: {
      status: "True",
      reason: primary.drained ? "PrimaryDrained" : "PrimaryUnavailable",
      message: `The primary ${primary.name} ${shares[0]! > 0 ? "is partly unhealthy" : why}; ${active.name} serves (new requests: ${split}).`,
    },
    healthy,
  };
}

/** Each member's share of new requests, in percent, from its health (Envoy's priority load). */
export function loadShares(health: number[]): number[] {
  const total = health.reduce((a, b) => a + b, 0);
  if (total === 0) return health.map(() => 0);
  if (total < 100) return health.map((h) => (100 * h) / total);
  let left = 100;
  return health.map((h) => {
    const share = Math.min(h, left);
    left -= share;
    return share;
  });
}

/** Least time between two adopted views of one policy. */
export const DAMPING_MS = 10_000;

export type Adopted = { view: LiveView; key: string; at: number };

/** The views the status shows, per policy: each new one adopted at most once per DAMPING_MS. */
export class LiveStates {
  private readonly adopted = new Map<string, Adopted>();

  /**
   * Offers a policy's current view. Returns "adopted" when the status should change now,
   * "later" when it differs but waits out the damping (offer it again by then), or "same".
   */
  offer(policy: string, view: LiveView, now: number): "adopted" | "later" | "same" {
    const key = viewKey(view);
    const last = this.adopted.get(policy);
    if (last?.key === key) return "same";
    if (last && now - last.at < DAMPING_MS) return "later";
    // The first reports are no transition: they start no damping.
    const first = !last || last.view.condition.reason === "NoReports";
    this.adopted.set(policy, { view, key, at: first ? -Infinity : now });
    return "adopted";
  }

  get(policy: string): Adopted | undefined {
    return this.adopted.get(policy);
  }

  /** Forgets policies no longer compiled. */
  retain(live: Set<string>): void {
    for (const policy of this.adopted.keys()) if (!live.has(policy)) this.adopted.delete(policy);
  }
}

export const viewKey = (view: LiveView) =>
  `${view.activeBackend ?? ""}|${view.condition.reason}|${view.condition.message}|${view.healthy.join(",")}`;
