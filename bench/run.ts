// `make bench`: every benchmark, one after the other, printed as markdown.
//
//   node bench/run.ts                    # all sections
//   node bench/run.ts compile            # only the named ones, in the order given
//   node bench/run.ts compile failover
//
// A section is a name, a title and a function that returns its markdown; add new ones to
// SECTIONS. Progress goes to stderr, so stdout is the report alone.
import { cpus, loadavg } from "node:os";
import { runApplyBench } from "./apply.ts";
import { runCompileBench } from "./compile.ts";
import { runFailoverBench } from "./failover.ts";
import { runIngestBench } from "./ingest.ts";
import { runOperatorBench } from "./operator.ts";
import { runStatsBench } from "./stats.ts";
import { runXdsBench } from "./xds.ts";

export type Section = { name: string; title: string; run: () => Promise<string> };

export const SECTIONS: Section[] = [
  { name: "compile", title: "Compile: policies to Envoy config", run: () => runCompileBench() },
  { name: "operator", title: "Operator: apply -> Ready on a real API server", run: () => runOperatorBench() },
  {
    name: "xds",
    title: "xDS: 10,000 policies served to Envoy, side by side with ConfigMap mode",
    run: () => runXdsBench(),
  },
  {
    name: "apply",
    title: "Apply: a fresh Envoy taking 10,000 policies from the xDS server, alone",
    run: () => runApplyBench(),
  },
  {
    name: "stats",
    title: "Stats: 10 Envoys reporting 10,000 policies' clusters every 5 s",
    run: () => runStatsBench(),
  },
  {
    name: "ingest",
    title: "Ingest: reading one Envoy's stats report at 10,000 policies, alone",
    run: async () => runIngestBench(),
  },
  { name: "failover", title: "Failover: a crash-looping primary under load", run: () => runFailoverBench() },
];

export async function main(args: string[]): Promise<number> {
  const unknown = args.filter((a) => !SECTIONS.some((s) => s.name === a));
  if (unknown.length) {
    process.stderr.write(
      `unknown section ${unknown.join(", ")}; sections: ${SECTIONS.map((s) => s.name).join(", ")}\n`,
    );
    return 2;
  }
  const selected = args.length ? args.map((a) => SECTIONS.find((s) => s.name === a)!) : SECTIONS;

  const cpu = cpus();
  process.stdout.write(
    `# fallback-operator benchmarks\n\n${new Date().toISOString().slice(0, 10)}, Node.js ${process.version}, ${cpu.length} × ${cpu[0]?.model.trim() ?? "unknown CPU"}, load average ${loadavg()[0]!.toFixed(1)} at the start.\n`,
  );
  for (const section of selected) {
    process.stderr.write(`== ${section.name}\n`);
    const started = performance.now();
    const markdown = await section.run();
    process.stdout.write(`\n## ${section.title}\n\n${markdown}`);
    process.stderr.write(`== ${section.name}: ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  }
  return 0;
}

if (process.argv[1] === import.meta.filename) {
  process.exitCode = await main(process.argv.slice(2));
}
