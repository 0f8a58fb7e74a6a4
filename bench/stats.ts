// Stats benchmark: the real operator taking the stats reports of 10 Envoys, every 5 s, at N
// FallbackPolicies (each with 3 Service backends of 10 endpoints, as in bench/xds.ts): 2 real
// Envoys on `fallbackctl bootstrap` (their metrics_service sink, the default interval) and 8
// replay clients (bench/stats-clients.ts, a process of their own) sending what a real Envoy
// sends: its used counters (as deltas: 0), gauges and histograms (as intervals without
// samples), recorded from its admin interface once it has every cluster, in messages of
// 10,000 families, each client with a node id of its own.
//
// Measured over a steady window after all 10 report: the operator's CPU (utime + stime of
// its process), its VmRSS before any report and after the window (and where it is, by kind of
// mapping, with V8's heap in use, read over the operator's inspector; once more after a full
// collection asked for when the window's figures are in), and the status writes in
// the window (resourceVersion changes of the policies, from a watch): none, since nothing
// changes. Then a transition: the replay clients report the primary of one probe policy (its
// Services have no endpoints, so no Envoy reports its clusters) as 1 healthy of 1 host, then
// as recorded again (the cluster ages out of the operator's view): that policy's status is
// written twice (once per transition), no other policy's at all.
//
//   node bench/stats.ts               # ~15-20 min on two cores: N = 10,000
//   node bench/stats.ts 1000          # a smaller N
//   node bench/stats.ts 1000 20       # and a window of 20 s
//   STATS_BENCH_CPU_PROF=FILE node bench/stats.ts   # then as long again with a CPU profile of the operator
//   import { runStatsBench } from "./stats.ts"   // from bench/run.ts
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startProxy, type Proxy } from "../test/support/proxy.ts";
import { freePort } from "../test/support/ports.ts";
import { repoRoot } from "../test/support/paths.ts";
import { startControlPlane } from "../test/support/controlplane.ts";
import { startOperator, type RunningOperator } from "../test/support/operator.ts";
import {
  PLURAL_PATH,
  PolicyWatch,
  kubeClient,
  mb,
  ms,
  num,
  procMappings,
  procStatus,
  reconciled,
  type Kube,
} from "./kube.ts";
import { sleep, until } from "../test/support/poll.ts";
import { createPolicies, policyNamespace } from "./policies.ts";
import type { Recorded } from "./stats-clients.ts";

export type StatsBenchOptions = {
  /** Policies; default 10,000. */
  policies?: number;
  /** Replay clients beside the 2 real Envoys; default 8. */
  replays?: number;
  /** The steady window measured; default 60 s. */
  windowMs?: number;
  dir?: string;
  log?: (line: string) => void;
};

const TARGET = { cpuPercent: 10, rssGrowthBytes: 100 * 1024 * 1024 };
const ENVOYS = 2;
const ENDPOINTS = 10;
const INTERVAL_MS = 5_000;
const CLK_TCK = 100;

export async function runStatsBench(options: StatsBenchOptions = {}): Promise<string> {
  const o = {
    policies: 10_000,
    replays: 8,
    windowMs: 60_000,
    dir: join(repoRoot, ".local", "bench-stats"),
    log: (line: string) => process.stderr.write(`${line}\n`),
    ...options,
  };
  rmSync(o.dir, { recursive: true, force: true });
  mkdirSync(o.dir, { recursive: true });
  const cp = await startControlPlane({ dir: join(o.dir, "controlplane") });
  const kube = kubeClient(cp.kubeconfigPath);
  const proxies: Proxy[] = [];
  let op: RunningOperator | undefined;
  let watch: PolicyWatch | undefined;
  let writes: WriteCounter | undefined;
  let replay: Replay | undefined;
  let inspector: Inspector | undefined;
  try {
    const ns = await policyNamespace(cp.kubeconfigPath, "bench-stats");
    const xds = `127.0.0.1:${await freePort()}`;

    // ---- the objects, the operator ----
    o.log(`stats bench: creating ${num(o.policies)} policies with ${num(3 * o.policies)} Services and EndpointSlices`);
    const t0 = performance.now();
    const names = Array.from({ length: o.policies }, (_, i) => `p${String(i).padStart(5, "0")}`);
    const probe = names[0]!;
    await createPolicies(kube, ns, names, { endpoints: ENDPOINTS, empty: [probe] });
    o.log(`stats bench: created in ${ms(performance.now() - t0)}`);
    watch = new PolicyWatch(kube, ns);
    await watch.start();
    writes = new WriteCounter(kube, ns);
    await writes.start();
    const profile = process.env.STATS_BENCH_CPU_PROF;
    const inspectPort = await freePort();
    op = await startOperator({
      kubeconfig: cp.kubeconfigPath,
      configNamespace: ns,
      watchNamespace: ns,
      args: ["--xds-addr", xds, "--xds-plaintext", "--envoy-listen", `127.0.0.1:${await freePort()}`],
      // The inspector reads V8's heap and asks for a full collection at the end (the memory rows).
      env: { NODE_OPTIONS: `--inspect=127.0.0.1:${inspectPort}` },
    });
    await watch.until(names, reconciled(true), 900_000);
    o.log(`stats bench: all ${num(o.policies)} policies Ready`);
    await sleep(2_000);
    const noReports = procStatus(op.pid);
    inspector = await Inspector.connect(inspectPort);
    const memory = async (): Promise<Memory> => ({ ...procMappings(op!.pid), heapUsed: await inspector!.heapUsed() });
    const noReportsMemory = await memory();

    // ---- 2 real Envoys: serving every policy, their reports in every status ----
    proxies.push(
      ...(await Promise.all(
        Array.from({ length: ENVOYS }, (_, i) =>
          startProxy({ dir: o.dir, xdsServers: [xds], nodeId: `envoy-${i + 1}`, readyTimeoutMs: 600_000 }),
        ),
      )),
    );
    const clusters = 4 * o.policies + 1;
    for (const proxy of proxies)
      await until(
        `${proxy.nodeId}'s ${num(clusters)} clusters`,
        async () => (await proxy.stat("cluster_manager.active_clusters")) >= clusters,
        900_000,
        2_000,
      );
    o.log(`stats bench: ${ENVOYS} Envoys have every cluster; waiting for the statuses to show them and their reports`);
    // The probe's clusters never had a host: Envoy never sets their membership gauges, so it does not report them.
    await watch.until(
      names,
      (p) => p.status?.proxies?.acked === ENVOYS && (p.metadata.name === probe || reasonOf(p) === "PrimaryServing"),
      900_000,
    );
    await writes.quiet(15_000, 600_000);
    const probeBaseline = reasonOf(watch.latest.get(probe));

    // ---- a real Envoy's report, recorded ----
    const recorded = await record(proxies[0]!, ns, names.slice(1));
    const reportFile = join(o.dir, "report.json");
    writeFileSync(reportFile, JSON.stringify(recorded));
    o.log(
      `stats bench: recorded ${proxies[0]!.nodeId}'s report: ${num(recorded.counters.length)} counters, ${num(recorded.gauges.length)} gauges, ${num(recorded.histograms.list.length)} histograms`,
    );

    // ---- the replay clients: all 10 report ----
    const beforeReplay = procStatus(op.pid);
    const beforeReplayMemory = await memory();
    replay = startReplay(xds, o.replays, reportFile, `${ns}/${probe}/primary`);
    const report = await replay
      .line((l) => l.startsWith("{"), 120_000)
      .then((l) => JSON.parse(l) as { families: number; messages: number; bytes: number });
    await replay.line((l) => l === "reporting", 120_000);
    o.log(
      `stats bench: all ${ENVOYS + o.replays} report (${num(report.families)} families in ${report.messages} messages, ${mb(report.bytes)}, per report); settling for ${ms(2 * INTERVAL_MS)}`,
    );
    await sleep(2 * INTERVAL_MS);

    // ---- the steady window ----
    const envoyBytes = () => proxies[0]!.stat(`cluster.fallback-xds.upstream_cx_tx_bytes_total`);
    const bytes0 = await envoyBytes();
    const w0 = {
      at: performance.now(),
      wall: Date.now(),
      cpu: procCpu(op.pid),
      writes: writes.snapshot(),
      replay: replay.status(),
    };
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, procStatus(op!.pid).rss)), 1_000);
    await sleep(o.windowMs);
    clearInterval(sampler);
    const w1 = {
      at: performance.now(),
      wall: Date.now(),
      cpu: procCpu(op.pid),
      writes: writes.snapshot(),
      replay: replay.status(),
    };
    const afterWindow = procStatus(op.pid);
    const afterWindowMemory = await memory();
    // What of it is kept: after a full collection (the window's figures are read before it).
    await inspector.collectGarbage();
    await sleep(1_000);
    const collectedMemory = await memory();
    const collected = procStatus(op.pid);
    const bytes1 = await envoyBytes();
    const seconds = (w1.at - w0.at) / 1000;
    const cpuPercent = (100 * (w1.cpu - w0.cpu)) / CLK_TCK / seconds;
    const windowWrites = diff(w0.writes, w1.writes);
    const loggedWrites = loggedStatusWrites(op.logs(), w0.wall, w1.wall);
    const reports = (w1.replay.reports - w0.replay.reports) / o.replays;
    o.log(
      `stats bench: window ${seconds.toFixed(1)} s: operator CPU ${cpuPercent.toFixed(1)} % of a core, ${sum(windowWrites)} status writes, VmRSS ${mb(noReports.rss)} -> ${mb(afterWindow.rss)}`,
    );
    if (profile) {
      // After the window, so that the profiler's own cost is not in it: as many more seconds, profiled.
      await inspector.startProfile();
      const c0 = procCpu(op.pid);
      await sleep(o.windowMs);
      await inspector.stopProfile(profile, (100 * (procCpu(op.pid) - c0)) / CLK_TCK / (o.windowMs / 1000));
    }

    // ---- a transition: the probe's primary healthy, and back ----
    const f0 = writes.snapshot();
    const flipAt = performance.now();
    replay.send("flip");
    await replay.line((l) => l === "flipped", 60_000);
    await watch.until([probe], (p) => reasonOf(p) === "PrimaryServing", 60_000);
    const flipMs = performance.now() - flipAt;
    replay.send("unflip");
    await replay.line((l) => l === "unflipped", 60_000);
    const backAt = performance.now();
    // Back as recorded: the probe's gauges are not reported any more, and its clusters age out of the operator's view (REPORT_AGE_OUT_MS).
    await watch.until([probe], (p) => reasonOf(p) === probeBaseline, 120_000);
    const backMs = performance.now() - backAt;
    await sleep(3 * INTERVAL_MS); // any stray write would come by now
    const flipWrites = diff(f0, writes.snapshot());
    const probeWrites = flipWrites.get(probe) ?? 0;
    const otherWrites = sum(flipWrites) - probeWrites;
    o.log(
      `stats bench: flip and back: ${probeWrites} writes of the probe (${ms(flipMs)}, back ${ms(backMs)}), ${otherWrites} of others`,
    );

    return reportOf({
      o,
      report,
      recorded,
      seconds,
      cpuPercent,
      noReports,
      beforeReplay,
      afterWindow,
      collected,
      memory: [noReportsMemory, beforeReplayMemory, afterWindowMemory, collectedMemory],
      peak,
      windowWrites: sum(windowWrites),
      loggedWrites,
      resumed: writes.resumed,
      reports,
      envoyBytesPerReport: ((bytes1 - bytes0) * INTERVAL_MS) / (w1.at - w0.at),
      replayStatus: w1.replay,
      probeWrites,
      otherWrites,
      flipMs,
      backMs,
      probeBaseline: probeBaseline ?? "none",
    });
  } catch (err) {
    if (op) {
      const path = join(repoRoot, ".local", `bench-stats-operator-${process.pid}.log`);
      writeFileSync(path, op.output());
      o.log(`stats bench: failed; the operator's log is in ${path}`);
    }
    throw err;
  } finally {
    replay?.kill();
    inspector?.close();
    watch?.close();
    writes?.close();
    await Promise.all(proxies.map((p) => p.stop()));
    await op?.kill();
    kube.close();
    await cp.stop();
    rmSync(o.dir, { recursive: true, force: true });
  }
}

const reasonOf = (p: any): string | undefined =>
  (p?.status?.conditions ?? []).find((c: any) => c.type === "FallbackActive")?.reason;

// ---- recording a real Envoy's report ----------------------------------------------------------

/**
 * What the Envoy's sink sends: its used stats (the sink skips unused ones, as `usedonly`
 * does), by type; of each histogram its quantiles and bucket bounds. `names`: the policies
 * whose clusters have endpoints, so that Envoy reports their membership.
 */
async function record(envoy: Proxy, ns: string, names: string[]): Promise<Recorded> {
  const read = async (type: string) => {
    const res = await fetch(`${envoy.adminUrl}/stats?format=json&usedonly&type=${type}`);
    if (!res.ok) throw new Error(`${envoy.nodeId} /stats type=${type}: ${res.status} ${await res.text()}`);
    return ((await res.json()) as { stats: any[] }).stats;
  };
  const values = (stats: any[]) =>
    stats
      .filter((s) => typeof s.name === "string" && typeof s.value === "number")
      .map((s) => [s.name as string, s.value as number] as [string, number]);
  const counters = values(await read("Counters"));
  const gauges = values(await read("Gauges"));
  const quantiles: number[] =
    (await read("Histograms")).find((s) => s.histograms)?.histograms.supported_quantiles ?? [];
  const buckets = (await read("Histograms&histogram_buckets=cumulative")).flatMap((s) => s.histograms ?? []) as {
    name: string;
    buckets: { upper_bound: number }[];
  }[];
  const histograms = {
    quantiles,
    list: buckets.map((h) => [h.name, h.buckets.map((b) => b.upper_bound)] as [string, number[]]),
  };
  // `type` is what keeps counters and gauges apart: an Envoy without it would answer both, twice.
  const counterNames = new Set(counters.map(([n]) => n));
  const both = gauges.filter(([n]) => counterNames.has(n)).length;
  if (both) throw new Error(`${both} stats are both counters and gauges: does this Envoy's /stats take type=?`);
  const gaugeNames = new Set(gauges.map(([n]) => n));
  const missing = names
    .flatMap((p) => ["primary", "fallback-1", "fallback-2"].map((m) => `cluster.${ns}/${p}/${m}.membership_healthy`))
    .filter((n) => !gaugeNames.has(n));
  if (missing.length) throw new Error(`${envoy.nodeId} reports no ${missing[0]} (and ${missing.length - 1} more)`);
  return { counters: counters.map(([n]) => n), gauges, histograms };
}

// ---- the replay clients -----------------------------------------------------------------------

type ReplayStatus = { reports: number; pending: number; lateMs: number; rss: number };
type Replay = {
  line: (pred: (line: string) => boolean, timeoutMs: number) => Promise<string>;
  send: (line: string) => void;
  status: () => ReplayStatus;
  kill: () => void;
};

function startReplay(xds: string, count: number, file: string, probeCluster: string): Replay {
  const child: ChildProcess = spawn(
    process.execPath,
    [join(import.meta.dirname, "stats-clients.ts"), xds, String(count), file, probeCluster],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const lines: string[] = [];
  const waiters = new Set<(line: string) => void>();
  let status: ReplayStatus = { reports: 0, pending: 0, lateMs: 0, rss: 0 };
  let exited: string | undefined;
  let buffer = "";
  child.stdout!.setEncoding("utf8").on("data", (s: string) => {
    buffer += s;
    for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.startsWith('{"reports"')) status = JSON.parse(line);
      lines.push(line);
      for (const w of waiters) w(line);
    }
  });
  child.once("exit", (code, signal) => (exited = `replay clients exited (${code ?? signal})`));
  let read = 0;
  return {
    // The next line (from the last one taken) that satisfies `pred`.
    line: (pred, timeoutMs) =>
      new Promise((done, fail) => {
        for (; read < lines.length; read++) if (pred(lines[read]!)) return done(lines[read++]!);
        const timer = setTimeout(
          () => (waiters.delete(waiter), fail(new Error(exited ?? "timed out waiting for the replay clients"))),
          timeoutMs,
        );
        const waiter = (line: string) => {
          read = lines.length;
          if (!pred(line)) return;
          waiters.delete(waiter);
          clearTimeout(timer);
          done(line);
        };
        waiters.add(waiter);
      }),
    send: (line) => void child.stdin!.write(`${line}\n`),
    status: () => status,
    kill: () => {
      child.stdin!.end();
      child.kill("SIGKILL");
    },
  };
}

// ---- measuring --------------------------------------------------------------------------------

/** utime + stime of a process, in clock ticks. */
function procCpu(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // from field 3 (state) on
  return Number(fields[11]) + Number(fields[12]);
}

/** Every write of a policy (a new resourceVersion), counted per policy from a watch; an ended watch resumes from a list (a policy changed meanwhile counts once). */
class WriteCounter {
  private readonly versions = new Map<string, string>();
  private readonly counts = new Map<string, number>();
  private handle: { close: () => void } | undefined;
  private closed = false;
  private last = performance.now();
  resumed = 0;

  private readonly kube: Kube;
  private readonly ns: string;

  constructor(kube: Kube, ns: string) {
    this.kube = kube;
    this.ns = ns;
  }

  async start(): Promise<void> {
    const list = await this.kube.call("GET", `${PLURAL_PATH}/${this.ns}/fallbackpolicies`);
    for (const p of list.items) this.seen(p);
    this.handle = this.kube.watch(
      `${PLURAL_PATH}/${this.ns}/fallbackpolicies?watch=1&allowWatchBookmarks=true&resourceVersion=${list.metadata.resourceVersion}`,
      (event) => {
        if (event.type === "ADDED" || event.type === "MODIFIED") this.seen(event.object);
      },
      () => this.resume(),
    );
  }

  private resume(): void {
    if (this.closed) return;
    this.resumed++;
    this.start().catch(() => setTimeout(() => this.resume(), 500));
  }

  private seen(p: any): void {
    const name = p.metadata.name;
    const before = this.versions.get(name);
    if (before === p.metadata.resourceVersion) return;
    this.versions.set(name, p.metadata.resourceVersion);
    if (before === undefined) return;
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
    this.last = performance.now();
  }

  snapshot(): Map<string, number> {
    return new Map(this.counts);
  }

  /** Resolves once no policy was written for `forMs`. */
  async quiet(forMs: number, timeoutMs: number): Promise<void> {
    await until(`no status writes for ${ms(forMs)}`, () => performance.now() - this.last >= forMs, timeoutMs, 500);
  }

  close(): void {
    this.closed = true;
    this.handle?.close();
  }
}

const diff = (before: Map<string, number>, after: Map<string, number>) =>
  new Map([...after].map(([k, v]) => [k, v - (before.get(k) ?? 0)] as const).filter(([, v]) => v > 0));
const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

/** The operator's own count: its "statuses written" debug lines between two wall-clock times. */
function loggedStatusWrites(logs: Record<string, unknown>[], from: number, to: number): number {
  return logs
    .filter((l) => l["msg"] === "statuses written")
    .filter((l) => {
      const t = typeof l["time"] === "number" ? l["time"] : Date.parse(String(l["time"]));
      return t >= from && t <= to;
    })
    .reduce((n, l) => n + Number(l["statusWrites"] ?? 0), 0);
}

/** The operator's inspector: its heap in use, a full collection, and (with STATS_BENCH_CPU_PROF) a CPU profile. */
class Inspector {
  private id = 0;
  private readonly pending = new Map<number, (result: any) => void>();
  private readonly ws: WebSocket;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.onmessage = (event) => {
      const message = JSON.parse(String(event.data));
      this.pending.get(message.id)?.(message.result);
      this.pending.delete(message.id);
    };
  }

  static async connect(port: number): Promise<Inspector> {
    const [target] = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
      webSocketDebuggerUrl: string;
    }[];
    const ws = new WebSocket(target!.webSocketDebuggerUrl);
    await new Promise((done, fail) => ((ws.onopen = done), (ws.onerror = fail)));
    return new Inspector(ws);
  }

  private call(method: string, params: object = {}): Promise<any> {
    const id = ++this.id;
    this.ws.send(JSON.stringify({ id, method, params }));
    return new Promise((done) => this.pending.set(id, done));
  }

  /** V8's heap in use, bytes (garbage not yet collected included). */
  async heapUsed(): Promise<number> {
    const { result } = await this.call("Runtime.evaluate", {
      expression: "process.memoryUsage().heapUsed",
      returnByValue: true,
    });
    return Number(result.value);
  }

  async collectGarbage(): Promise<void> {
    await this.call("HeapProfiler.collectGarbage");
  }

  close(): void {
    this.ws.close();
  }

  async startProfile(): Promise<void> {
    await this.call("Profiler.enable");
    await this.call("Profiler.setSamplingInterval", { interval: 1000 });
    await this.call("Profiler.start");
  }

  /** Writes the profile to `file` and prints where the time went, by function (self time). */
  async stopProfile(file: string, cpuPercent: number): Promise<void> {
    const { profile } = await this.call("Profiler.stop");
    writeFileSync(file, JSON.stringify(profile));
    const total = profile.samples.length;
    const self = new Map<string, number>();
    for (const node of profile.nodes) {
      const f = node.callFrame;
      const key = `${f.functionName || "(anonymous)"} ${f.url.replace(/^.*\/(operator|node_modules)\//, "$1/")}:${f.lineNumber + 1}`;
      self.set(key, (self.get(key) ?? 0) + (node.hitCount ?? 0));
    }
    const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, 25);
    process.stderr.write(
      `stats bench: CPU profile in ${file} (the operator's CPU meanwhile: ${cpuPercent.toFixed(1)} % of a core); self time, % of the wall time (of a core):\n`,
    );
    for (const [key, hits] of top)
      process.stderr.write(`  ${((100 * hits) / total).toFixed(1).padStart(5)} %  ${key}\n`);
  }
}

// ---- the report -------------------------------------------------------------------------------

type Memory = ReturnType<typeof procMappings> & { heapUsed: number };

/** Where the RSS is at each point (docs/benchmarks.md, "Live state", says what the rows showed). */
function memoryRows(r: { memory: Memory[]; collected: ReturnType<typeof procStatus> }): string[] {
  const [noReport, beforeReplay, afterWindow, collected] = r.memory as [Memory, Memory, Memory, Memory];
  const split = (m: Memory) =>
    `${mb(m.v8Pages)} / ${mb(m.mallocHeap)} / ${mb(m.otherAnon)} / ${mb(m.files)}; ${mb(m.heapUsed)}`;
  return [
    `| operator memory by mapping (V8's pages / glibc's heap / other anonymous / files; V8's heap in use): no report | ${split(noReport)} | | |`,
    `| … ${ENVOYS} Envoys reporting, before the replays | ${split(beforeReplay)} | | |`,
    `| … after the window | ${split(afterWindow)} | | |`,
    `| … after a full collection asked for then (VmRSS ${mb(r.collected.rss)}) | ${split(collected)} | | |`,
  ];
}

function reportOf(r: {
  o: Required<StatsBenchOptions>;
  report: { families: number; messages: number; bytes: number };
  recorded: Recorded;
  seconds: number;
  cpuPercent: number;
  noReports: ReturnType<typeof procStatus>;
  beforeReplay: ReturnType<typeof procStatus>;
  afterWindow: ReturnType<typeof procStatus>;
  collected: ReturnType<typeof procStatus>;
  /** At no report, before the replays, after the window, after a full collection. */
  memory: Memory[];
  peak: number;
  windowWrites: number;
  loggedWrites: number;
  resumed: number;
  reports: number;
  envoyBytesPerReport: number;
  replayStatus: ReplayStatus;
  probeWrites: number;
  otherWrites: number;
  probeBaseline: string;
  flipMs: number;
  backMs: number;
}): string {
  const { o } = r;
  const reporters = ENVOYS + o.replays;
  const verdict = (ok: boolean) => (ok ? "met" : "**missed**");
  const growth = r.afterWindow.rss - r.noReports.rss;
  const perSecond = (reporters * r.report.families) / (INTERVAL_MS / 1000);
  return [
    `The real operator (child process) on a real kube-apiserver of its own, serving ${num(o.policies)} policies (each with 3 Service backends of ${ENDPOINTS} endpoints and a static answer:`,
    `${num(4 * o.policies)} clusters) over Delta ADS to ${ENVOYS} real Envoys on \`fallbackctl bootstrap\`, which push their stats to it every 5 s (metrics_service sink, counters as deltas,`,
    `10,000 families a message). ${o.replays} replay clients (one process, a connection each) send what such an Envoy sends, every 5 s, each as an Envoy of its own: the used counters`,
    `(as deltas, 0), gauges and histograms (a summary and a histogram family each, of an interval without samples) of a real one, recorded from its admin interface`,
    `(\`/stats?format=json&usedonly&type=Counters|Gauges|Histograms\`) once it had every cluster. The window is`,
    `${r.seconds.toFixed(0)} s of all ${reporters} reporting, with nothing changing; status writes are policies' resourceVersion changes seen by a watch. Then the replay clients report the`,
    `primary of a probe policy (its Services have no endpoints, so no Envoy reports its clusters: FallbackActive ${r.probeBaseline}) as 1 healthy of 1 host, and once its status`,
    `shows that, as recorded again (the cluster ages out of the operator's view after 30 s).`,
    "",
    "| measure | value | target | |",
    "|---|---:|---:|---|",
    `| reporters, every 5 s | ${reporters} (${ENVOYS} Envoys, ${o.replays} replays) | | |`,
    `| a report: metric families / messages / bytes | ${num(r.report.families)} / ${r.report.messages} / ${mb(r.report.bytes)} | | |`,
    `| … a real Envoy's bytes to the operator per 5 s (its xDS cluster's \`upstream_cx_tx_bytes_total\`) | ${mb(r.envoyBytesPerReport)} | | |`,
    `| families sent to the operator | ${num(Math.round(perSecond))} a second (${mb((reporters * r.report.bytes) / (INTERVAL_MS / 1000))}/s) | | |`,
    `| operator CPU over the window (utime + stime) | ${r.cpuPercent.toFixed(1)} % of a core | ≤ ${TARGET.cpuPercent} % | ${verdict(r.cpuPercent <= TARGET.cpuPercent)} |`,
    `| operator VmRSS: all Ready, no Envoy, no report | ${mb(r.noReports.rss)} | | |`,
    `| operator VmRSS: ${ENVOYS} Envoys reporting, before the replays | ${mb(r.beforeReplay.rss)} | | |`,
    `| operator VmRSS: after the window (peak in it; VmHWM) | ${mb(r.afterWindow.rss)} (${mb(r.peak)}; ${mb(r.afterWindow.hwm)}) | | |`,
    `| operator VmRSS growth: no report -> after the window | ${mb(growth)} | ≤ ${mb(TARGET.rssGrowthBytes)} | ${verdict(growth <= TARGET.rssGrowthBytes)} |`,
    ...memoryRows(r),
    `| status writes in the window | ${r.windowWrites} (the operator's log: ${r.loggedWrites}) | 0 (no transition) | ${verdict(r.windowWrites === 0)} |`,
    `| probe flipped to 1 healthy and back: its status writes | ${r.probeWrites} | 2 | ${verdict(r.probeWrites === 2)} |`,
    `| … other policies' status writes meanwhile | ${r.otherWrites} | 0 | ${verdict(r.otherWrites === 0)} |`,
    `| … flip sent -> status PrimaryServing; the last replay's report without it -> ${r.probeBaseline} | ${ms(r.flipMs)}; ${ms(r.backMs)} | | |`,
    "",
    `Each replay client sent ${r.reports.toFixed(1)} reports in the window (${(r.seconds / 5).toFixed(1)} due); at its end ${r.replayStatus.pending} messages were unsent, the latest report ${ms(r.replayStatus.lateMs)} late at most`,
    `(the replay process's RSS: ${mb(r.replayStatus.rss)}). A report: ${num(r.recorded.counters.length)} counters, ${num(r.recorded.gauges.length)} gauges, ${num(r.recorded.histograms.list.length)} histograms.`,
    ...(r.resumed
      ? [
          `The write-counting watch was resumed ${r.resumed} times (a policy written more than once meanwhile counts once).`,
        ]
      : []),
    "",
  ].join("\n");
}

if (process.argv[1] === import.meta.filename) {
  const n = Number(process.argv[2] ?? 10_000);
  const windowS = process.argv[3];
  process.stdout.write(
    `${await runStatsBench({ policies: n, ...(windowS ? { windowMs: Number(windowS) * 1000 } : {}) })}\n`,
  );
}
