// Operator benchmark: the real fallback-operator on a real API server (a control plane of
// its own), with N FallbackPolicies already there, measured from outside as a user sees it:
//
//   - isolated change: PATCH one policy's spec (a new retry count, so its config changes)
//     over a keep-alive HTTPS client, until a watch shows its status for that generation
//     (observedGeneration == generation on the status and on Ready, Ready True when the
//     config fits the ConfigMap). Sequential, spaced by more than the operator's least
//     interval between ConfigMap writes (2 s), so each change finds the operator idle;
//   - back-to-back: the same, the next change as soon as the last is Ready;
//   - burst: 200 spec changes sent at once: ConfigMap writes (fallback_config_writes_total)
//     and the time until all 200 are reconciled;
//   - the operator's memory at the end: VmRSS and VmHWM from /proc/<pid>/status.
//
//   node bench/operator.ts                # ~5 min: N = 100, then 1,000 (900 more)
//   import { runOperatorBench } from "./operator.ts"   // from bench/run.ts
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createTestNamespace, kubectl } from "../test/support/kubectl.ts";
import { repoRoot } from "../test/support/paths.ts";
import { startControlPlane } from "../test/support/controlplane.ts";
import { metric, startOperator, type RunningOperator } from "../test/support/operator.ts";
import { endpointSlice, policy, service } from "../test/support/objects.ts";
import {
  PLURAL_PATH,
  PolicyWatch,
  kubeClient,
  limited,
  mb,
  ms,
  num,
  percentile,
  procStatus,
  readyOf,
  reconciled,
  type Kube,
} from "./kube.ts";
import { sleep } from "../test/support/poll.ts";

export type OperatorBenchOptions = {
  /** Policy counts, in increasing order; default 100 and 1,000. */
  sizes?: number[];
  /** Isolated changes per size; default 50. */
  samples?: number;
  /** Back-to-back changes per size; default 10. */
  backToBack?: number;
  /** Least time from one isolated change to the next, ms; default 2,200 (the write interval is 2 s). */
  gapMs?: number;
  /** Spec changes sent at once; default 200. */
  burst?: number;
  /** Idle time before the second memory reading, ms; default 30,000. */
  settleMs?: number;
  /** State folder of the control plane; default .local/bench-controlplane. */
  dir?: string;
  /** More environment for the operator, e.g. NODE_OPTIONS="--cpu-prof --cpu-prof-dir=...". */
  operatorEnv?: NodeJS.ProcessEnv;
  /** Progress lines go here; default stderr. */
  log?: (line: string) => void;
};

const TARGET = { p50Ms: 100, p99Ms: 500, rssBytes: 200 * 1024 * 1024, atPolicies: 1_000 };

type SizeResult = {
  policies: number;
  ready: number;
  configBytes: number;
  settleMs: number;
  isolated: number[];
  backToBack: number[];
  burst: { changes: number; writes: number; ms: number };
  /** The operator's own account of the syncs that handled the isolated changes (median ms). */
  breakdown: { syncs: number; total: number; compile: number; configMap: number; status: number };
  /** Syncs during the isolated changes that found nothing to compile (our own status writes coming back). */
  reused: number;
  memory: Memory;
  /** Memory once the operator has been idle for settleMs. */
  settled: Memory;
};

type Memory = {
  rss: number;
  hwm: number;
  anon: number;
  file: number;
  heapUsed?: number;
  heapTotal?: number;
  external?: number;
};

export async function runOperatorBench(options: OperatorBenchOptions = {}): Promise<string> {
  const o = {
    sizes: [100, 1_000],
    samples: 50,
    backToBack: 10,
    gapMs: 2_200,
    settleMs: 30_000,
    burst: 200,
    dir: join(repoRoot, ".local", "bench-controlplane"),
    operatorEnv: {},
    log: (line: string) => process.stderr.write(`${line}\n`),
    ...options,
  };
  rmSync(o.dir, { recursive: true, force: true });
  const cp = await startControlPlane({ dir: o.dir });
  let op: RunningOperator | undefined;
  let kube: Kube | undefined;
  let watch: PolicyWatch | undefined;
  try {
    o.log(`operator bench: control plane on ${cp.server} (${(cp.startupMs / 1000).toFixed(1)} s)`);
    for (const args of [
      ["apply", "-f", join(repoRoot, "crds")],
      ["wait", "--for", "condition=Established", "--timeout", "60s", "crd/fallbackpolicies.fallback.dev"],
    ]) {
      const r = await kubectl(cp.kubeconfigPath, args);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
    }
    const apps = await createTestNamespace(cp.kubeconfigPath, "bench-apps");
    const config = await createTestNamespace(cp.kubeconfigPath, "bench-config");
    kube = kubeClient(cp.kubeconfigPath);
    watch = new PolicyWatch(kube, apps);
    await watch.start();
    op = await startOperator({
      kubeconfig: cp.kubeconfigPath,
      configNamespace: config,
      watchNamespace: apps,
      env: o.operatorEnv,
    });
    for (let i = 0; ; i++) {
      if (
        (await fetch(`${op.healthUrl}/readyz`)
          .then((r) => r.status)
          .catch(() => 0)) === 200
      )
        break;
      if (i > 300) throw new Error(`operator not ready: ${op.output().slice(-2000)}`);
      await sleep(100);
    }

    const results: SizeResult[] = [];
    const names: string[] = [];
    const name = (i: number) => `p${String(i).padStart(5, "0")}`;
    let attempts = 0; // the retry count set by the next change; cycles 3, 4, 5 (never the default 2)
    const nextAttempts = () => 3 + (attempts++ % 3);
    const change = async (n: string) => {
      const updated = await kube!.call(
        "PATCH",
        `${PLURAL_PATH}/${apps}/fallbackpolicies/${n}`,
        { spec: { retry: { attempts: nextAttempts() } } },
        "application/merge-patch+json",
      );
      return updated.metadata.generation as number;
    };
    const writes = async () => (await metric(op!.metricsUrl, "fallback_config_writes_total")) ?? 0;
    const syncLogCount = () => op!.logs().length;
    const memory = async (): Promise<Memory> => ({
      ...procStatus(op!.pid),
      heapUsed: await metric(op!.metricsUrl, "nodejs_heap_size_used_bytes"),
      heapTotal: await metric(op!.metricsUrl, "nodejs_heap_size_total_bytes"),
      external: await metric(op!.metricsUrl, "nodejs_external_memory_bytes"),
    });
    const idle = await memory();
    o.log(`operator bench: idle operator VmRSS ${mb(idle.rss)}`);

    for (const n of o.sizes) {
      // Services (each with an EndpointSlice of 2 endpoints) first, then the policies.
      const fresh = Array.from({ length: n - names.length }, (_, k) => name(names.length + k));
      o.log(`operator bench: creating ${fresh.length} policies (${n} in all)`);
      const t0 = performance.now();
      await limited(fresh, 32, async (p) => {
        await kube!.call("POST", `/api/v1/namespaces/${apps}/services`, service(apps, p));
        await kube!.call(
          "POST",
          `/apis/discovery.k8s.io/v1/namespaces/${apps}/endpointslices`,
          endpointSlice(apps, p, ["10.0.0.1", "10.0.0.2"]),
        );
      });
      await limited(fresh, 32, (p) => kube!.call("POST", `${PLURAL_PATH}/${apps}/fallbackpolicies`, policy(apps, p)));
      names.push(...fresh);
      await watch.until(names, reconciled(false), 300_000);
      const settleMs = performance.now() - t0;
      await sleep(o.gapMs);
      const ready = names.filter((p) => readyOf(watch!.latest.get(p))?.status === "True").length;
      const allReady = ready === names.length;
      const configBytes = (await metric(op.metricsUrl, "fallback_config_bytes")) ?? 0;
      o.log(`operator bench: ${n} policies reconciled in ${ms(settleMs)}; ${ready} Ready; config ${mb(configBytes)}`);

      const logFrom = syncLogCount();
      const sample = async (i: number, isolated: boolean) => {
        const p = names[(i * 7919) % names.length]!;
        const started = performance.now();
        const generation = await change(p);
        await watch!.until([p], reconciled(allReady, generation), 60_000);
        const took = performance.now() - started;
        if (isolated && took > 500)
          o.log(
            `operator bench: slow change: ${p} to generation ${generation} took ${ms(took)} (at ${new Date().toISOString()})`,
          );
        return took;
      };
      const isolated: number[] = [];
      for (let i = 0; i < o.samples; i++) {
        const started = performance.now();
        isolated.push(await sample(i, true));
        await sleep(Math.max(0, o.gapMs - (performance.now() - started)));
      }
      o.log(
        `operator bench: ${n} policies, isolated changes: p50 ${ms(percentile(isolated, 50))}, p99 ${ms(percentile(isolated, 99))}`,
      );
      const phaseLogs = op.logs().slice(logFrom);
      const phase = phaseLogs.filter((l) => l["msg"] === "synced");
      const handling = phase.filter((l) => !l["reused"]);
      const statusPasses = phaseLogs.filter((l) => l["msg"] === "statuses written" && Number(l["statusWrites"]) > 0);
      const med = (logs: Array<Record<string, unknown>>, field: string) =>
        percentile(
          logs.map((l) => Number(l[field])),
          50,
        );
      const breakdown = {
        syncs: handling.length,
        total: med(handling, "ms"),
        compile: med(handling, "compileMs"),
        configMap: med(handling, "configMapMs"),
        status: med(statusPasses, "ms"),
      };
      const reused = phase.filter((l) => l["reused"]).length;
      const backToBack: number[] = [];
      for (let i = 0; i < o.backToBack; i++) backToBack.push(await sample(o.samples + i, false));
      await sleep(o.gapMs);

      const burstNames = Array.from(
        { length: Math.min(o.burst, names.length) },
        (_, i) => names[(i * 7919 + 1) % names.length]!,
      );
      const before = await writes();
      const b0 = performance.now();
      const generations = new Map<string, number>();
      await limited(burstNames, 32, async (p) => generations.set(p, await change(p)));
      await Promise.all(burstNames.map((p) => watch!.until([p], reconciled(allReady, generations.get(p)), 300_000)));
      const burstMs = performance.now() - b0;
      await sleep(o.gapMs);
      const burst = { changes: burstNames.length, writes: (await writes()) - before, ms: burstMs };
      o.log(
        `operator bench: ${n} policies, burst of ${burst.changes}: ${burst.writes} ConfigMap writes, ${ms(burstMs)}`,
      );
      const mem = await memory();
      o.log(`operator bench: ${n} policies: VmRSS ${mb(mem.rss)}, VmHWM ${mb(mem.hwm)}`);
      // V8 gives memory back once work stops for a while (its memory reducer): the steady state.
      await sleep(o.settleMs);
      const settled = await memory();
      o.log(`operator bench: ${n} policies, ${o.settleMs / 1000} s later: VmRSS ${mb(settled.rss)}`);
      results.push({
        policies: n,
        ready,
        configBytes,
        settleMs,
        isolated,
        backToBack,
        burst,
        breakdown,
        reused,
        memory: mem,
        settled,
      });
    }

    if (watch.resumed) o.log(`operator bench: the bench's policy watch ended and was resumed ${watch.resumed} times`);
    const syncLog = op.logs();
    const stopCode = await op.stop();
    if (stopCode !== 0) o.log(`operator bench: the operator exited with ${stopCode}`);
    return table(results, idle, o, syncLog);
  } catch (err) {
    if (op) {
      const path = join(repoRoot, ".local", `bench-operator-${process.pid}.log`);
      writeFileSync(path, op.output());
      o.log(`operator bench: failed; the operator's log is in ${path}`);
    }
    throw err;
  } finally {
    watch?.close();
    kube?.close();
    await op?.kill();
    await cp.stop();
    rmSync(o.dir, { recursive: true, force: true });
  }
}

const describeMemory = (m: Memory) =>
  `V8 heap ${mb(m.heapUsed ?? NaN)} used of ${mb(m.heapTotal ?? NaN)}, external ${mb(m.external ?? NaN)}; RSS ${mb(m.anon)} anonymous + ${mb(m.file)} mapped files`;

function table(
  results: SizeResult[],
  idle: Memory,
  o: Required<OperatorBenchOptions>,
  logs: Array<Record<string, unknown>>,
): string {
  const { memory, settled } = results.at(-1)!;
  const atTarget = results.find((r) => r.policies === TARGET.atPolicies) ?? results.at(-1)!;
  const verdict = (ok: boolean) => (ok ? "met" : "**missed**");
  const lines = [
    `The real operator (child process, debug log) on a real kube-apiserver of its own; per policy a Service with an EndpointSlice of 2 endpoints and the default spec`,
    `(a static-response fallback). A change is a PATCH of spec.retry.attempts on one policy, over keep-alive HTTPS; it is done when a watch shows the policy's status for`,
    `the new generation (status and Ready observedGeneration), with Ready True when the config fits the ConfigMap (else the policy is reconciled as ConfigTooLarge).`,
    `Isolated: ${o.samples} changes one after the other, at least ${o.gapMs / 1000} s apart (the operator writes the ConfigMap at most every 2 s). Back-to-back: ${o.backToBack} changes,`,
    `each sent as soon as the last was done. Burst: ${o.burst} changes sent at once (32 in flight). p99 is nearest-rank (of ${o.samples} samples, that is the largest).`,
    "",
    `target: p50 ≤ ${TARGET.p50Ms} ms and p99 ≤ ${TARGET.p99Ms} ms at ${num(TARGET.atPolicies)} policies; operator RSS ≤ ${mb(TARGET.rssBytes)}`,
    "",
    `| policies | Ready | config | isolated p50 | p99 | max | back-to-back p50 | max | burst: ConfigMap writes | burst: all done | VmRSS / VmHWM after | VmRSS idle ${o.settleMs / 1000} s later |`,
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of results) {
    lines.push(
      `| ${num(r.policies)} | ${num(r.ready)} | ${mb(r.configBytes)} | ${ms(percentile(r.isolated, 50))} | ${ms(percentile(r.isolated, 99))} | ${ms(Math.max(...r.isolated))} | ` +
        `${ms(percentile(r.backToBack, 50))} | ${ms(Math.max(...r.backToBack))} | ${r.burst.writes} for ${r.burst.changes} changes | ${ms(r.burst.ms)} | ${mb(r.memory.rss)} / ${mb(r.memory.hwm)} | ${mb(r.settled.rss)} |`,
    );
  }
  lines.push(
    "",
    "Where an isolated change's time goes inside the operator (its debug log, median over the syncs that compiled one, and the status passes that wrote; the rest of",
    "the latency is the watch event reaching the operator, a 5 ms debounce, and the status update reaching the bench's watch). Syncs set off by the operator's own status writes skip the compile.",
    "",
    "| policies | syncs | sync | compile | ConfigMap render + write | status pass | syncs that skipped the compile |",
    "|---:|---:|---:|---:|---:|---:|---:|",
  );
  for (const r of results) {
    const b = r.breakdown;
    lines.push(
      `| ${num(r.policies)} | ${b.syncs} | ${ms(b.total)} | ${ms(b.compile)} | ${ms(b.configMap)} | ${ms(b.status)} | ${r.reused} |`,
    );
  }
  const p50 = percentile(atTarget.isolated, 50);
  const p99 = percentile(atTarget.isolated, 99);
  lines.push(
    "",
    "| measure | value | target | |",
    "|---|---:|---:|---|",
    `| isolated p50 at ${num(atTarget.policies)} policies | ${ms(p50)} | ≤ ${TARGET.p50Ms} ms | ${verdict(p50 <= TARGET.p50Ms)} |`,
    `| isolated p99 at ${num(atTarget.policies)} policies | ${ms(p99)} | ≤ ${TARGET.p99Ms} ms | ${verdict(p99 <= TARGET.p99Ms)} |`,
    `| operator VmRSS at the end | ${mb(memory.rss)} | ≤ ${mb(TARGET.rssBytes)} | ${verdict(memory.rss <= TARGET.rssBytes)} |`,
    `| operator VmRSS after ${o.settleMs / 1000} s idle | ${mb(settled.rss)} | ≤ ${mb(TARGET.rssBytes)} | ${verdict(settled.rss <= TARGET.rssBytes)} |`,
    `| operator VmHWM (peak RSS) | ${mb(memory.hwm)} | ≤ ${mb(TARGET.rssBytes)} | ${verdict(memory.hwm <= TARGET.rssBytes)} |`,
    "",
    `Memory: the operator idles at ${mb(idle.rss)} VmRSS before any policy exists (${describeMemory(idle)}); at the end: ${describeMemory(memory)}; ${o.settleMs / 1000} s later: ${describeMemory(settled)}.`,
    "",
  );
  const tooLarge = results.filter((r) => r.ready < r.policies);
  if (tooLarge.length) {
    lines.push(
      `At ${tooLarge.map((r) => num(r.policies)).join(", ")} policies the config (${tooLarge.map((r) => mb(r.configBytes)).join(", ")}) exceeds the 1 MiB ConfigMap limit: the operator keeps the last config that fitted, ` +
        `and the policies outside it are reconciled as Ready False / ConfigTooLarge, so no ConfigMap is written there and the latency is that of compile + status patch alone.`,
      "",
    );
  }
  const deferred = logs.filter((l) => l["msg"] === "config write deferred").length;
  if (deferred)
    lines.push(
      `The operator deferred ${deferred} syncs to respect its write interval (bursts and back-to-back changes).`,
      "",
    );
  return lines.join("\n");
}

if (process.argv[1] === import.meta.filename) {
  process.stdout.write(`${await runOperatorBench()}\n`);
}
