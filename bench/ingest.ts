// Reading stats reports, alone: ClusterStats.ingest on a report of the shape a real Envoy sends
// at N policies on `fallbackctl bootstrap` (each Service member cluster's membership_healthy, then a
// few of Envoy's own stats and histograms), encoded with Envoy's descriptors, from 10 Envoys
// in turn. No network, no operator: the cost of the reading itself, which the `stats` section
// measures inside the operator together with gRPC's.
//
//   node bench/ingest.ts          # N = 10,000
//   node bench/ingest.ts 1000
//   import { runIngestBench } from "./ingest.ts"   // from bench/run.ts
import { encodeMessage } from "../operator/src/xds/envoy-api.ts";
import { ClusterStats } from "../operator/src/xds/stats.ts";
import { ms, num } from "./kube.ts";

const MESSAGE = "envoy.service.metrics.v3.StreamMetricsMessage";
const BATCH = 10_000; // the bootstrap's batch_size
const MEMBERS = ["primary", "fallback-1", "fallback-2"];
const ENVOYS = 10;
const ROUNDS = 20;
const GAUGE = 1;
const HISTOGRAM = 4;

/** One report's messages: per policy and member (each a Service), membership_healthy; then Envoy's own. */
export function reportMessages(policies: number): Uint8Array[] {
  const timestampMs = BigInt(Date.now());
  const gauge = (name: string, value: number) => ({ name, type: GAUGE, metric: [{ gauge: { value }, timestampMs }] });
  const families = [];
  for (let p = 0; p < policies; p++)
    for (const member of MEMBERS) {
      const cluster = `cluster.bench-ingest/p${String(p).padStart(5, "0")}/${member}`;
      families.push(gauge(`${cluster}.membership_healthy`, 10));
    }
  for (let i = 0; i < 45; i++) families.push(gauge(`server.stat_${i}`, i));
  for (let i = 0; i < 7; i++)
    families.push({
      name: `cluster_manager.histogram_${i}`,
      type: HISTOGRAM,
      metric: [
        {
          histogram: {
            sampleCount: 0n,
            sampleSum: 0,
            bucket: [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000].map((upperBound) => ({
              upperBound,
              cumulativeCount: 0n,
            })),
          },
          timestampMs,
        },
      ],
    });
  const messages: Uint8Array[] = [];
  for (let i = 0; i < families.length; i += BATCH)
    messages.push(encodeMessage(MESSAGE, { envoyMetrics: families.slice(i, i + BATCH) }));
  return messages;
}

export function runIngestBench(policies = 10_000): string {
  const messages = reportMessages(policies);
  const bytes = messages.reduce((sum, m) => sum + m.length, 0);
  const stats = new ClusterStats();
  const t0 = performance.now();
  for (let envoy = 0; envoy < ENVOYS; envoy++) for (const m of messages) stats.ingest(`envoy-${envoy}`, m);
  const first = (performance.now() - t0) / ENVOYS;
  const times: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const t = performance.now();
    for (const m of messages) stats.ingest(`envoy-${round % ENVOYS}`, m);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)]!;
  const perSecond = (ENVOYS / 5) * median; // 10 Envoys, a report each every 5 s
  return [
    `ClusterStats.ingest on one Envoy's report at ${num(policies)} policies (${num(3 * policies)} member clusters),`,
    `${ENVOYS} Envoys in turn, ${ROUNDS} reports timed after each Envoy's first.`,
    "",
    "| measure | value |",
    "|---|---:|",
    `| a report: messages / bytes | ${messages.length} / ${(bytes / 1e6).toFixed(1)} MB |`,
    `| an Envoy's first report (every name new) | ${ms(first)} |`,
    `| a report after it, median (min, max) | ${ms(median)} (${ms(times[0]!)}, ${ms(times.at(-1)!)}) |`,
    `| 10 Envoys every 5 s: reading alone | ${((100 * perSecond) / 1000).toFixed(1)} % of a core |`,
  ].join("\n");
}

if (process.argv[1] === import.meta.filename) {
  process.stdout.write(`${runIngestBench(Number(process.argv[2] ?? 10_000))}\n`);
}
