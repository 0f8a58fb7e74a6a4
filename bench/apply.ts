// A fresh Envoy taking 10,000 policies, alone: the operator's xDS server in this process
// (serving one compile of a synthetic snapshot, the shape of bench/compile.ts) and a real
// Envoy on `fallbackctl bootstrap`, timed from its start to its ACK of every policy's
// resources (the clock starts before fallbackctl prints the bootstrap: a few hundred ms of
// the figure are Node starting it). No API server, no informers, no status writes: the part of the `xds` section's
// fresh-Envoy figure that is Envoy's own (docs/benchmarks.md, "xDS", says why the two differed).
//
//   node bench/apply.ts          # N = 10,000, 3 runs
//   node bench/apply.ts 1000
//   import { runApplyBench } from "./apply.ts"   // from bench/run.ts
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Compiler } from "../operator/src/compile/compile.ts";
import { defaultOptions } from "../operator/src/compile/snapshot.ts";
import { createLogger } from "../operator/src/kopf/index.ts";
import { XdsServer } from "../operator/src/xds/server.ts";
import { repoRoot } from "../test/support/paths.ts";
import { until } from "../test/support/poll.ts";
import { freePort } from "../test/support/ports.ts";
import { startProxy } from "../test/support/proxy.ts";
import { syntheticSnapshot } from "./compile.ts";
import { mb, ms, procStatus } from "./kube.ts";

const RUNS = 3;

type Run = { publishMs: number; applyMs: number; envoyRss: number };

async function once(n: number, dir: string, run: number): Promise<Run> {
  const port = await freePort();
  const server = new XdsServer({ host: "127.0.0.1", port, logger: createLogger({ level: "silent" }) });
  await server.start();
  try {
    const started = performance.now();
    const compiler = new Compiler({ ...defaultOptions, listen: { address: "127.0.0.1", port: await freePort() } });
    server.publish(compiler.compile(syntheticSnapshot(n)).resources);
    const publishMs = performance.now() - started;
    const envoyStart = performance.now();
    const proxy = await startProxy({
      dir,
      xdsServers: [`127.0.0.1:${port}`],
      nodeId: `apply-${run}`,
      readyTimeoutMs: 600_000,
    });
    try {
      await until(
        `Envoy's ACK of all ${n} policies`,
        () => [...server.policyStates().values()].filter((s) => s.acked === 1).length >= n,
        600_000,
      );
      return {
        publishMs,
        applyMs: performance.now() - envoyStart,
        envoyRss: procStatus(proxy.pid!).rss,
      };
    } finally {
      await proxy.stop();
    }
  } finally {
    await server.stop();
  }
}

export async function runApplyBench(n = 10_000): Promise<string> {
  const dir = join(repoRoot, ".local", "bench-apply");
  mkdirSync(dir, { recursive: true });
  const runs: Run[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await once(n, dir, i);
    process.stderr.write(`apply bench: run ${i + 1}: Envoy start to every policy ACKed ${ms(r.applyMs)}\n`);
    runs.push(r);
  }
  const sorted = [...runs].sort((a, b) => a.applyMs - b.applyMs);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  return [
    `${n.toLocaleString("en-US")} policies (3 Service backends of 10 endpoints each and a static answer: ${(4 * n).toLocaleString("en-US")} clusters), one compile`,
    `published into the operator's xDS server in this process, then a real Envoy on \`fallbackctl bootstrap\` (Delta ADS, plaintext on loopback)`,
    `started; done when the server has every policy ACKed. ${RUNS} runs, each with a fresh server and Envoy; the median.`,
    "",
    "| measure | median | runs | target |",
    "|---|---:|---:|---:|",
    `| compile + publish (encode) of ${n.toLocaleString("en-US")} policies | ${ms(median.publishMs)} | ${runs.map((r) => ms(r.publishMs)).join(" / ")} | |`,
    `| fallbackctl bootstrap + Envoy process start to every policy ACKed | ${ms(median.applyMs)} | ${runs.map((r) => ms(r.applyMs)).join(" / ")} | ≤ 5.00 s (the xds section's fresh Envoy) |`,
    `| Envoy VmRSS then | ${mb(median.envoyRss)} | ${runs.map((r) => mb(r.envoyRss)).join(" / ")} | |`,
    "",
  ].join("\n");
}

if (process.argv[1] === import.meta.filename) {
  process.stdout.write(await runApplyBench(Number(process.argv[2] ?? 10_000)));
  process.exit(0);
}
