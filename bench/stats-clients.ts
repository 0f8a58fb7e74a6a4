// Replay Envoys for the stats benchmark: each streams a real Envoy's recorded stats report to
// the operator's MetricsService every 5 s, encoded as Envoy's metrics_service sink does it
// (StreamMetricsMessage, families of its used counters then its used gauges, in messages of
// 10,000; counters as deltas: 0, nothing changed; each used histogram as a summary and a
// histogram family of an interval without samples; the node on the stream's first message),
// each with a node id of its own, on a connection of its own. Run in a process of their own so
// that encoding and sending do not slow the bench's clocks:
//
//   node bench/stats-clients.ts HOST:PORT COUNT REPORT.json PROBE_CLUSTER
//
// REPORT.json: bench/stats.ts's Recorded. Reads "flip" / "unflip" lines on stdin:
// PROBE_CLUSTER reported 1 healthy of 1 host (its host count too, as an Envoy keeping every
// stat would: the operator knows the probe's Service has none), or as recorded (a cluster without endpoints:
// not at all, its membership gauges never set, so unused). Prints "reporting" once every client has sent a first report, "flipped" /
// "unflipped" once every client has sent a report in the new state, and a JSON line of
// counts every 5 s. Exits when stdin closes (the bench ended, however it did).
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { Client, credentials, type ClientWritableStream } from "@grpc/grpc-js";
import { encodeMessage } from "../operator/src/xds/envoy-api.ts";

const PATH = "/envoy.service.metrics.v3.MetricsService/StreamMetrics";
const MESSAGE = "envoy.service.metrics.v3.StreamMetricsMessage";
export const INTERVAL_MS = 5_000;
const BATCH = 10_000;
const COUNTER = 0;
const GAUGE = 1;
const SUMMARY = 2;
const HISTOGRAM = 4;

type Family =
  | { name: string; type: typeof COUNTER | typeof GAUGE; value: number }
  | { name: string; type: typeof HISTOGRAM; bounds: number[] };
export type Recorded = {
  counters: string[];
  gauges: [string, number][];
  histograms: { quantiles: number[]; list: [string, number[]][] };
};

/** The report's messages, encoded once: as recorded, and with the probe's primary 1 healthy of 1. */
function encodeReport(file: string, probeCluster: string): { normal: Buffer[]; flipped: Buffer[]; families: number } {
  const recorded = JSON.parse(readFileSync(file, "utf8")) as Recorded;
  const probe = [`cluster.${probeCluster}.membership_healthy`, `cluster.${probeCluster}.membership_total`];
  // In Envoy's order: counters, gauges, histograms.
  const families: Family[] = [
    ...recorded.counters.map((name) => ({ name, type: COUNTER, value: 0 }) as const),
    ...recorded.gauges
      .filter(([name]) => !probe.includes(name))
      .map(([name, value]) => ({ name, type: GAUGE, value }) as const),
    ...recorded.histograms.list.map(([name, bounds]) => ({ name, type: HISTOGRAM, bounds }) as const),
  ];
  const timestampMs = BigInt(Date.now());
  const { quantiles } = recorded.histograms;
  const metricsOf = (f: Family): Record<string, unknown>[] =>
    f.type === HISTOGRAM
      ? [
          {
            name: f.name,
            type: SUMMARY,
            metric: [
              {
                summary: {
                  sampleCount: 0n,
                  sampleSum: 0,
                  quantile: quantiles.map((quantile) => ({ quantile, value: NaN })),
                },
                timestampMs,
              },
            ],
          },
          {
            name: f.name,
            type: HISTOGRAM,
            metric: [
              {
                histogram: {
                  sampleCount: 0n,
                  sampleSum: 0,
                  bucket: f.bounds.map((upperBound) => ({ upperBound, cumulativeCount: 0n })),
                },
                timestampMs,
              },
            ],
          },
        ]
      : [
          {
            name: f.name,
            type: f.type,
            metric: [
              f.type === COUNTER
                ? { counter: { value: f.value }, timestampMs }
                : { gauge: { value: f.value }, timestampMs },
            ],
          },
        ];
  const batches = (all: Family[]) => {
    const metrics = all.flatMap(metricsOf);
    const out: Buffer[] = [];
    for (let i = 0; i < metrics.length; i += BATCH)
      out.push(Buffer.from(encodeMessage(MESSAGE, { envoyMetrics: metrics.slice(i, i + BATCH) })));
    return { out, count: metrics.length };
  };
  const normal = batches(families);
  // Flipped: the probe's two gauges last, together in one message, so that no reading sees one and not the other.
  const withProbe = batches([...families, ...probe.map((name) => ({ name, type: GAUGE, value: 1 }) as const)]);
  if (withProbe.count % BATCH === 1) throw new Error("the probe's gauges would be split between two messages");
  return { normal: normal.out, flipped: withProbe.out, families: normal.count };
}

type Replayer = { reports: () => number; pending: () => number; lateMs: () => number; close: () => void };

function replayer(
  address: string,
  id: string,
  firstAt: number,
  messages: () => Buffer[],
  onReport: (state: Buffer[]) => void,
): Replayer {
  const client = new Client(address, credentials.createInsecure());
  const raw = (b: Buffer) => b;
  let stream: ClientWritableStream<Buffer> | undefined;
  let reports = 0;
  let pending = 0;
  let lateMs = 0;
  let due = firstAt;
  let timer: NodeJS.Timeout | undefined;
  const identifier = Buffer.from(encodeMessage(MESSAGE, { identifier: { node: { id, cluster: "bench-replay" } } }));
  const report = () => {
    lateMs = Math.max(lateMs, performance.now() - due);
    const state = messages();
    // A stream per Envoy, kept open; if it ends (the operator went away), the next report opens another, as Envoy's sink does.
    let first = false;
    if (!stream) {
      first = true;
      stream = client.makeClientStreamRequest<Buffer, Buffer>(PATH, raw, raw, () => (stream = undefined));
      stream.on("error", () => (stream = undefined));
    }
    let left = state.length;
    state.forEach((message, i) => {
      pending++;
      // Protobuf messages concatenated merge: the identifier, then the first batch.
      stream!.write(first && i === 0 ? Buffer.concat([identifier, message]) : message, () => {
        pending--;
        if (--left === 0) {
          reports++;
          onReport(state);
        }
      });
    });
    due += INTERVAL_MS;
    timer = setTimeout(report, Math.max(0, due - performance.now()));
  };
  timer = setTimeout(report, Math.max(0, firstAt - performance.now()));
  return {
    reports: () => reports,
    pending: () => pending,
    lateMs: () => lateMs,
    close: () => {
      clearTimeout(timer);
      stream?.end();
      client.close();
    },
  };
}

if (process.argv[1] === import.meta.filename) {
  const [address, count, file, probeCluster] = [
    process.argv[2]!,
    Number(process.argv[3]),
    process.argv[4]!,
    process.argv[5]!,
  ];
  const { normal, flipped, families } = encodeReport(file, probeCluster);
  const bytes = normal.reduce((n, b) => n + b.length, 0);
  let state = normal;
  let want: { state: Buffer[]; line: string; seen: Set<number> } | undefined;
  const started = new Set<number>();
  const start = performance.now() + 100;
  // Spread over the interval, as Envoys started at different times flush at different times.
  const clients = Array.from({ length: count }, (_, i) =>
    replayer(
      address,
      `replay-${i + 1}`,
      start + (i * INTERVAL_MS) / count,
      () => state,
      (sent) => {
        if (!started.has(i) && started.add(i).size === count) process.stdout.write("reporting\n");
        if (want && sent === want.state && want.seen.add(i).size === count) {
          process.stdout.write(`${want.line}\n`);
          want = undefined;
        }
      },
    ),
  );
  process.stdout.write(`${JSON.stringify({ families, messages: normal.length, bytes })}\n`);
  const timer = setInterval(() => {
    process.stdout.write(
      `${JSON.stringify({ reports: clients.reduce((n, c) => n + c.reports(), 0), pending: clients.reduce((n, c) => n + c.pending(), 0), lateMs: Math.max(...clients.map((c) => c.lateMs())), rss: process.memoryUsage().rss })}\n`,
    );
  }, INTERVAL_MS);
  const stop = () => {
    clearInterval(timer);
    for (const c of clients) c.close();
    process.exit(0);
  };
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    if (line === "flip" || line === "unflip") {
      state = line === "flip" ? flipped : normal;
      want = { state, line: `${line}ped`, seen: new Set() };
    }
  });
  lines.on("close", stop);
  process.on("SIGTERM", stop);
}
