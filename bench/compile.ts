// Compile benchmark: a synthetic cluster of N FallbackPolicies through the operator's own
// pipeline, compile(snapshot) -> renderConfigFiles (the files the operator writes) + renderBootstrap.
//
// Each policy guards a target Service with two Service fallbacks (3 backends), every Service
// has one EndpointSlice of 10 ready IPv4 endpoints, spread over a few namespaces. Every run
// is a fresh process, so its peak RSS is its own (as a `fallbackctl render` run's would be):
// RUNS of them after a warm-up on 1,000 policies (the JIT compiled, as in a running operator
// or a second CI step), reported as the median time and the highest peak, and one cold run.
//
//   node bench/compile.ts                     # the table, for N = 1,000 and 10,000
//   node bench/compile.ts --child N [--cold]  # one run, as JSON (what the table is made of)
//   import { runCompileBench } from "./compile.ts"   // from bench/run.ts
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { compile } from "../operator/src/compile/compile.ts";
import { renderBootstrap, renderConfigFiles } from "../operator/src/compile/config-files.ts";
import { defaultOptions, type EndpointSlice, type Service, type Snapshot } from "../operator/src/compile/snapshot.ts";
import { CONFIGMAP_LIMIT_BYTES } from "../operator/src/controller/configmap.ts";
import { FALLBACKCTL_NODE_FLAGS } from "../operator/bin/node-flags.ts";

export const SIZES = [1_000, 10_000];
const RUNS = 3;
const NAMESPACES = 8;
const ENDPOINTS_PER_SERVICE = 10;
const PORT = 8080;

export type ChildReport = {
  policies: number;
  backends: number;
  /** Whether a 1,000-policy run came first, untimed. */
  warm: boolean;
  /** ms. render is renderConfigFiles (the files the operator writes); total is the two. */
  compileMs: number;
  renderMs: number;
  totalMs: number;
  /** renderBootstrap (fallbackctl's one-file config), ms. */
  bootstrapMs: number;
  /** Bytes of the xDS files (bootstrap.yaml, cds.yaml, lds.yaml), and of the one-file bootstrap. */
  xdsBytes: number;
  bootstrapBytes: number;
  /** Peak resident set size of the process after compile + renderConfigFiles, bytes. */
  maxRssBytes: number;
  /** Peak RSS once renderBootstrap has run too, bytes. */
  maxRssWithBootstrapBytes: number;
  /** RSS once the snapshot was built, before compiling, bytes. */
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
      spec: {
        ports: [{ name: "http", port: PORT, targetPort: "http", protocol: "TCP" }],
        clusterIP: `10.96.${(ip >> 8) & 255}.${ip & 255}`,
      },
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

// Started with --expose-gc, the child collects the warm-up's garbage (untimed) before the
// measured run, so its peak is the measured run's own.
const collect = () => (globalThis as { gc?: () => void }).gc?.();
const maxRss = () => process.resourceUsage().maxRSS * 1024; // maxRSS is in kilobytes
const WARM_UP_POLICIES = 1_000;

/** One run of N in this process: build the snapshot, compile and render it, then the bootstrap. */
export function measure(n: number, warm = true): ChildReport {
  if (warm) renderConfigFiles(compile(syntheticSnapshot(WARM_UP_POLICIES), defaultOptions).resources, defaultOptions);
  const snapshot = syntheticSnapshot(n);
  collect();
  const rssBeforeBytes = process.memoryUsage().rss;

  const t0 = performance.now();
  const output = compile(snapshot, defaultOptions);
  const t1 = performance.now();
  const xds = renderConfigFiles(output.resources, defaultOptions);
  const t2 = performance.now();
  const maxRssBytes = maxRss();

  // Outside the timed part: every policy made it into the config, fully.
  const notReady = output.results.filter((r) => r.conditions.find((c) => c.type === "Ready")?.status !== "True");
  if (output.results.length !== n || notReady.length) {
    throw new Error(
      `the bench snapshot did not compile cleanly: ${notReady.length} of ${output.results.length} policies not Ready (${JSON.stringify(notReady[0])})`,
    );
  }
  const xdsBytes = Object.values(xds.files).reduce((sum, text) => sum + Buffer.byteLength(text), 0);

  const t3 = performance.now();
  const bootstrap = renderBootstrap(output.resources, defaultOptions);
  const bootstrapMs = performance.now() - t3;
  return {
    policies: n,
    backends: output.results.reduce((sum, r) => sum + r.backends.length, 0),
    warm,
    compileMs: t1 - t0,
    renderMs: t2 - t1,
    totalMs: t2 - t0,
    bootstrapMs,
    xdsBytes,
    bootstrapBytes: Buffer.byteLength(bootstrap),
    maxRssBytes,
    maxRssWithBootstrapBytes: maxRss(),
    rssBeforeBytes,
  };
}

const execFileAsync = promisify(execFile);

/** Runs `node bench/compile.ts --child N` (with --cold unless `warm`) and returns its report. */
export async function measureInChild(n: number, warm = true): Promise<ChildReport> {
  // fallbackctl's own Node.js flags, so the peak is the one a `fallbackctl render` would have.
  const args = [
    ...FALLBACKCTL_NODE_FLAGS,
    "--expose-gc",
    import.meta.filename,
    "--child",
    String(n),
    ...(warm ? [] : ["--cold"]),
  ];
  const { stdout } = await execFileAsync(process.execPath, args, { maxBuffer: 16 * 1024 * 1024 });
  return JSON.parse(stdout) as ChildReport;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const ms = (v: number) =>
  v >= 1000 ? `${(v / 1000).toFixed(2)} s` : v >= 100 ? `${Math.round(v)} ms` : `${v.toFixed(1)} ms`;
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

export function compileTable(sizes: { warm: ChildReport[]; cold: ChildReport }[]): string {
  const lines = [
    `Synthetic cluster: per policy a target Service and 2 Service fallbacks (3 backends), each Service with one EndpointSlice of ${ENDPOINTS_PER_SERVICE} ready IPv4 endpoints, over ${NAMESPACES} namespaces.`,
    `compile() then renderConfigFiles() (bootstrap.yaml, cds.yaml, lds.yaml: what the operator writes); total is the two. Each run is a fresh process: ${RUNS} runs after a`,
    `${WARM_UP_POLICIES.toLocaleString("en-US")}-policy warm-up (median time, highest peak RSS, snapshot included), and one cold run (no warm-up). renderBootstrap()`,
    "(fallbackctl's one-file config) is timed after renderConfigFiles, in the same processes.",
    "",
    "target: 10k policies ≤ 1 s, ≤ 512 MB, linear",
    "",
    "| policies | compile | render | total | per policy | cold total | peak RSS | output size | renderBootstrap | its size | peak RSS with it |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  const total = (runs: ChildReport[]) => median(runs.map((r) => r.totalMs));
  for (const { warm, cold } of sizes) {
    const r = warm[0]!;
    const peak = (key: "maxRssBytes" | "maxRssWithBootstrapBytes") => Math.max(...warm.map((w) => w[key]));
    lines.push(
      `| ${r.policies.toLocaleString("en-US")} | ${ms(median(warm.map((w) => w.compileMs)))} | ${ms(median(warm.map((w) => w.renderMs)))} | ${ms(total(warm))} | ${((1000 * total(warm)) / r.policies).toFixed(0)} µs | ${ms(cold.totalMs)} | ${mb(peak("maxRssBytes"))} | ${mb(r.xdsBytes)} | ${ms(median(warm.map((w) => w.bootstrapMs)))} | ${mb(r.bootstrapBytes)} | ${mb(peak("maxRssWithBootstrapBytes"))} |`,
    );
  }
  lines.push("");
  if (sizes.length > 1) {
    const [first, last] = [sizes[0]!.warm, sizes.at(-1)!.warm];
    const factor = last[0]!.policies / first[0]!.policies;
    lines.push(
      `${factor}x the policies took ${(total(last) / total(first)).toFixed(1)}x the time (linear: ${factor}x). `,
    );
  }
  const perPolicy = sizes[0]!.warm[0]!.xdsBytes / sizes[0]!.warm[0]!.policies;
  lines[lines.length - 1] +=
    `The xDS files take ${(perPolicy / 1024).toFixed(1)} KB per policy of this shape, so the operator's ConfigMap (at most ${CONFIGMAP_LIMIT_BYTES / 1024 / 1024} MiB) holds about ${Math.floor(CONFIGMAP_LIMIT_BYTES / perPolicy)} of them; beyond that it reports ConfigTooLarge.`;
  return lines.join("\n") + "\n";
}

/** Fresh child processes, one after the other: RUNS warm and one cold per N; returns the markdown table. */
export async function runCompileBench(sizes: number[] = SIZES): Promise<string> {
  const results: { warm: ChildReport[]; cold: ChildReport }[] = [];
  for (const n of sizes) {
    process.stderr.write(`compile bench: ${n} policies (${RUNS} warm runs and a cold one, each a fresh process)\n`);
    const warm: ChildReport[] = [];
    for (let run = 0; run < RUNS; run++) warm.push(await measureInChild(n));
    results.push({ warm, cold: await measureInChild(n, false) });
  }
  return compileTable(results);
}

if (process.argv[1] === import.meta.filename) {
  const child = process.argv.indexOf("--child");
  if (child >= 0) {
    const n = Number(process.argv[child + 1]);
    if (!Number.isInteger(n) || n <= 0)
      throw new Error(`--child needs a positive number of policies, not ${process.argv[child + 1]}`);
    process.stdout.write(JSON.stringify(measure(n, !process.argv.includes("--cold"))) + "\n");
  } else {
    process.stdout.write(await runCompileBench());
  }
}
