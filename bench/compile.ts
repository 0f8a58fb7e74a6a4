// Compile benchmark: a synthetic cluster of N FallbackPolicies through the operator's own
// pipeline, compile(snapshot) -> renderXds (the files the operator writes) + renderBootstrap.
//
// Each policy guards a target Service with two Service fallbacks (3 backends), every Service
// has one EndpointSlice of 10 ready IPv4 endpoints, spread over a few namespaces. Each N runs
// in a fresh child process, so the peak RSS it reports is its own; times are the median of 3.
//
//   node bench/compile.ts              # the table, for N = 1,000 and 10,000
//   node bench/compile.ts --child N    # one N, as JSON (what the table is made of)
//   import { runCompileBench } from "./compile.ts"   // from bench/run.ts
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { compile } from "../operator/src/compile/compile.ts";
import { renderBootstrap, renderXds } from "../operator/src/compile/emit.ts";
import { defaultOptions, type EndpointSlice, type Service, type Snapshot } from "../operator/src/compile/snapshot.ts";
import { CONFIGMAP_LIMIT_BYTES } from "../operator/src/controller/configmap.ts";

export const SIZES = [1_000, 10_000];
const RUNS = 3;
const NAMESPACES = 8;
const ENDPOINTS_PER_SERVICE = 10;
const PORT = 8080;

export type ChildReport = {
  policies: number;
  backends: number;
  /** Per run, ms. render is renderXds (the files the operator writes); total is the two. */
  compileMs: number[];
  renderMs: number[];
  totalMs: number[];
  /** renderBootstrap (fallbackctl's one-file config), per run, ms. */
  bootstrapMs: number[];
  /** Bytes of the xDS files (bootstrap.yaml, cds.yaml, lds.yaml), and of the one-file bootstrap. */
  xdsBytes: number;
  bootstrapBytes: number;
  /** Peak resident set size after the compile + renderXds runs (the operator's work), bytes. */
  maxRssBytes: number;
  /** Peak RSS once renderBootstrap has run too, bytes. */
  maxRssWithBootstrapBytes: number;
  /** RSS once the snapshot was built, before the first compile, bytes. */
  rssBeforeBytes: number;
};

/** N policies, 3N Services, 3N EndpointSlices of 10 endpoints each; every address unique. */
export function syntheticSnapshot(n: number): Snapshot {
  const snapshot: Snapshot = { policies: [], services: [], endpointSlices: [] };
  let ip = 0;
  const addService = (namespace: string, name: string) => {
    const service: Service = {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name, namespace },
      spec: { ports: [{ name: "http", port: PORT, targetPort: "http", protocol: "TCP" }], clusterIP: `10.96.${(ip >> 8) & 255}.${ip & 255}` },
    };
    const endpoints = Array.from({ length: ENDPOINTS_PER_SERVICE }, () => {
      const i = ip++;
      return { addresses: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`], conditions: { ready: true } };
    });
    const slice: EndpointSlice & { apiVersion: string; kind: string } = {
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: { name: `${name}-abcde`, namespace, labels: { "kubernetes.io/service-name": name } },
      addressType: "IPv4",
      ports: [{ name: "http", port: PORT, protocol: "TCP" }],
      endpoints,
    };
    snapshot.services.push(service);
    snapshot.endpointSlices.push(slice);
  };
  for (let i = 0; i < n; i++) {
    const namespace = `team-${i % NAMESPACES}`;
    const name = `svc-${i}`;
    addService(namespace, name);
    addService(namespace, `${name}-fb1`);
    addService(namespace, `${name}-fb2`);
    snapshot.policies.push({
      apiVersion: "fallback.dev/v1alpha1",
      kind: "FallbackPolicy",
      metadata: { name, namespace, generation: 1, creationTimestamp: "2026-01-01T00:00:00Z" },
      spec: {
        targetRef: { name, port: PORT },
        fallbacks: [{ service: { name: `${name}-fb1`, port: PORT } }, { service: { name: `${name}-fb2`, port: PORT } }],
      },
    });
  }
  return snapshot;
}

// Started with --expose-gc, the child collects garbage between runs (untimed), so one
// run's leftovers do not count towards the next run's peak; an operator syncs seconds apart.
const collect = () => (globalThis as { gc?: () => void }).gc?.();
const maxRss = () => process.resourceUsage().maxRSS * 1024; // maxRSS is in kilobytes

/** One N in this process: build the snapshot, then compile and render it RUNS times. */
export function measure(n: number, runs = RUNS): ChildReport {
  const snapshot = syntheticSnapshot(n);
  collect();
  const report: ChildReport = {
    policies: n,
    backends: 0,
    compileMs: [],
    renderMs: [],
    totalMs: [],
    bootstrapMs: [],
    xdsBytes: 0,
    bootstrapBytes: 0,
    maxRssBytes: 0,
    maxRssWithBootstrapBytes: 0,
    rssBeforeBytes: process.memoryUsage().rss,
  };
  let last: ReturnType<typeof compile> | undefined;
  for (let run = 0; run < runs; run++) {
    last = undefined;
    // Fresh objects each run, as fallbackctl sees them: compile validates an object once
    // and reuses that for the same object later (which the operator's syncs rely on).
    const input = run === 0 ? snapshot : structuredClone(snapshot);
    collect();
    const t0 = performance.now();
    const output = compile(input, defaultOptions);
    const t1 = performance.now();
    const xds = renderXds(output.resources, defaultOptions);
    const t2 = performance.now();
    report.compileMs.push(t1 - t0);
    report.renderMs.push(t2 - t1);
    report.totalMs.push(t2 - t0);

    // Outside the timed part: every policy made it into the config, fully.
    const notReady = output.results.filter((r) => r.conditions.find((c) => c.type === "Ready")?.status !== "True");
    if (output.results.length !== n || notReady.length) {
      throw new Error(`the bench snapshot did not compile cleanly: ${notReady.length} of ${output.results.length} policies not Ready (${JSON.stringify(notReady[0])})`);
    }
    report.backends = output.results.reduce((sum, r) => sum + r.backends.length, 0);
    report.xdsBytes = Object.values(xds.files).reduce((sum, text) => sum + Buffer.byteLength(text), 0);
    last = output;
  }
  report.maxRssBytes = maxRss();

  for (let run = 0; run < runs; run++) {
    collect();
    const t0 = performance.now();
    const bootstrap = renderBootstrap(last!.resources, defaultOptions);
    report.bootstrapMs.push(performance.now() - t0);
    report.bootstrapBytes = Buffer.byteLength(bootstrap);
  }
  report.maxRssWithBootstrapBytes = maxRss();
  return report;
}

const execFileAsync = promisify(execFile);

/** Runs one N in a fresh `node bench/compile.ts --child N` and returns its report. */
export async function measureInChild(n: number): Promise<ChildReport> {
  const { stdout } = await execFileAsync(process.execPath, ["--expose-gc", import.meta.filename, "--child", String(n)], {
    maxBuffer: 16 * 1024 * 1024,
  });
  return JSON.parse(stdout) as ChildReport;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const ms = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : v >= 100 ? `${Math.round(v)} ms` : `${v.toFixed(1)} ms`);
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

export function compileTable(reports: ChildReport[]): string {
  const lines = [
    `Synthetic cluster: per policy a target Service and 2 Service fallbacks (3 backends), each Service with one EndpointSlice of ${ENDPOINTS_PER_SERVICE} ready IPv4 endpoints, over ${NAMESPACES} namespaces.`,
    `compile() then renderXds() (bootstrap.yaml, cds.yaml, lds.yaml: what the operator writes); total is the two. Median of ${RUNS} runs, each N in a fresh process;`,
    "peak RSS is the process's (snapshot included) after the compile + renderXds runs. renderBootstrap() (fallbackctl's one-file config) is timed after them.",
    "",
    "target: 10k policies ≤ 1 s, ≤ 512 MB, linear",
    "",
    "| policies | compile | render | total | per policy | peak RSS | output size | renderBootstrap | its size | peak RSS with it |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of reports) {
    const total = median(r.totalMs);
    lines.push(
      `| ${r.policies.toLocaleString("en-US")} | ${ms(median(r.compileMs))} | ${ms(median(r.renderMs))} | ${ms(total)} | ${((1000 * total) / r.policies).toFixed(0)} µs | ${mb(r.maxRssBytes)} | ${mb(r.xdsBytes)} | ${ms(median(r.bootstrapMs))} | ${mb(r.bootstrapBytes)} | ${mb(r.maxRssWithBootstrapBytes)} |`,
    );
  }
  lines.push("");
  if (reports.length > 1) {
    const [first, last] = [reports[0]!, reports.at(-1)!];
    const ratio = median(last.totalMs) / median(first.totalMs);
    lines.push(`${last.policies / first.policies}x the policies took ${ratio.toFixed(1)}x the time (linear: ${last.policies / first.policies}x). `);
  }
  const perPolicy = reports[0]!.xdsBytes / reports[0]!.policies;
  lines[lines.length - 1] += `The xDS files take ${(perPolicy / 1024).toFixed(1)} KB per policy of this shape, so the operator's ConfigMap (at most ${CONFIGMAP_LIMIT_BYTES / 1024 / 1024} MiB) holds about ${Math.floor(CONFIGMAP_LIMIT_BYTES / perPolicy)} of them; beyond that it reports ConfigTooLarge.`;
  return lines.join("\n") + "\n";
}

/** One fresh child process per N, one after the other; returns the markdown table. */
export async function runCompileBench(sizes: number[] = SIZES): Promise<string> {
  const reports: ChildReport[] = [];
  for (const n of sizes) {
    process.stderr.write(`compile bench: ${n} policies (fresh process, ${RUNS} runs)\n`);
    reports.push(await measureInChild(n));
  }
  return compileTable(reports);
}

if (process.argv[1] === import.meta.filename) {
  const child = process.argv.indexOf("--child");
  if (child >= 0) {
    const n = Number(process.argv[child + 1]);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`--child needs a positive number of policies, not ${process.argv[child + 1]}`);
    process.stdout.write(JSON.stringify(measure(n)) + "\n");
  } else {
    process.stdout.write(await runCompileBench());
  }
}
