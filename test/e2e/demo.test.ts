// `make demo`, the product's main job, end to end: `DEMO_ONCE=1 node scripts/demo.ts` as a
// user runs it (a control plane of its own, the CRD, the real operator serving xDS over
// mTLS, the examples applied unchanged, Envoy on `fallbackctl bootstrap`, a live change
// measured through Envoy, live traffic while backends crash). It must exit 0, tell each
// step, have the change live in Envoy within seconds, see no client-visible error while
// the primary is down, and leave no process behind. It runs in a state folder of its own (DEMO_DIR), so a
// `make demo` running meanwhile is not disturbed.
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { controlPlaneBinary } from "../support/controlplane.ts";
import { repoRoot } from "../support/paths.ts";
import { envoyAvailable } from "../support/envoy.ts";

const DIR = join(repoRoot, ".local", `demo-e2e-${process.pid}`);
const RUN_TIMEOUT_MS = 240_000;

type Run = { code: number | null; signal: NodeJS.Signals | null; output: string; ms: number };

/** Runs the demo to its end; on a hang, Ctrl-C (SIGINT), then SIGKILL 30 s later. */
function runDemo(): Promise<Run> {
  const started = performance.now();
  return new Promise((done) => {
    const demo = spawn(process.execPath, ["scripts/demo.ts"], {
      cwd: repoRoot,
      env: { ...process.env, DEMO_ONCE: "1", DEMO_DIR: DIR },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    demo.stdout.setEncoding("utf8").on("data", (s: string) => (output += s));
    demo.stderr.setEncoding("utf8").on("data", (s: string) => (output += s));
    const interrupt = setTimeout(() => {
      output += `\n[test] no exit after ${RUN_TIMEOUT_MS / 1000} s: SIGINT\n`;
      demo.kill("SIGINT");
    }, RUN_TIMEOUT_MS);
    const kill = setTimeout(() => demo.kill("SIGKILL"), RUN_TIMEOUT_MS + 30_000);
    demo.once("close", (code, signal) => {
      clearTimeout(interrupt);
      clearTimeout(kill);
      done({ code, signal, output, ms: performance.now() - started });
    });
  });
}

/** Processes still alive that the demo started: from its pid record, and any holding its folder. */
function leftovers(): string[] {
  const commandOf = (pid: number) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (stat.split(") ")[1]?.startsWith("Z")) return undefined; // a zombie is gone, only not yet reaped
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
    } catch {
      return undefined;
    }
  };
  const found = new Map<number, string>();
  const record = existsSync(join(DIR, "pids")) ? readFileSync(join(DIR, "pids"), "utf8") : "";
  for (const [, pid, name] of record.matchAll(/^(\d+) (.+)$/gm)) {
    const command = commandOf(Number(pid));
    // A recycled pid runs something else: only our own command lines count.
    if (
      command &&
      (command.includes(DIR) || command.includes("backend.ts --child") || command.includes("fallback-operator"))
    ) {
      found.set(Number(pid), `${name}: ${command}`);
    }
  }
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const command = commandOf(Number(entry));
    if (command?.includes(`${DIR}/`)) found.set(Number(entry), command);
  }
  return [...found].map(([pid, command]) => `${pid} ${command.slice(0, 200)}`);
}

describe.skipIf(!envoyAvailable() || !existsSync(controlPlaneBinary))(
  "make demo (DEMO_ONCE=1 node scripts/demo.ts)",
  () => {
    it(
      "walks through a live change over xDS, failover and recovery, exits 0, and leaves no process behind",
      { timeout: RUN_TIMEOUT_MS + 60_000 },
      async () => {
        const run = await runDemo();
        console.log(`demo: exit ${run.code ?? run.signal} after ${(run.ms / 1000).toFixed(1)} s`);

        const left = leftovers();
        for (const line of left) {
          try {
            process.kill(Number(line.split(" ")[0]), "SIGKILL"); // not to disturb later tests
          } catch {
            // gone meanwhile
          }
        }
        expect(left, "processes the demo left running").toEqual([]);
        expect(run.code, run.output).toBe(0);

        const out = run.output;
        const section = (from: string, to: string) => out.slice(out.indexOf(from), out.indexOf(to));
        // Every step is told, in order.
        const steps = [
          "Starting a local control plane (kube-apiserver + etcd)",
          "Installing the FallbackPolicy CRD",
          "Making a throwaway CA and two certificates with openssl",
          "Starting the operator with its xDS server",
          "--xds-tls-cert",
          "xDS server listening on 127.0.0.1:",
          "Starting demo backends",
          "Applying examples/shop.yaml and examples/ai.yaml, unchanged",
          "Publishing EndpointSlices",
          "$ operator/bin/fallbackctl.ts bootstrap --xds-server 127.0.0.1:",
          "Starting Envoy on that bootstrap",
          "$ .local/bin/envoy -c ",
          "kubectl get fbp -A",
          'configmaps "fallback-envoy" not found',
          "One request for the AI example",
          "A live change",
          "$ kubectl apply -f ",
          "kubectl apply -> Envoy serving it:",
          "kubectl get fbp -A",
          "{.status.proxies}",
          "Restoring examples/shop.yaml",
          "Sending live traffic",
          "Crashing the primary",
          "Crashing the cache too",
          "Bringing products-cache back",
          "Bringing the primary back",
          "Summary",
          "Stopping everything the demo started",
        ];
        let at = -1;
        for (const step of steps) {
          const found = out.indexOf(step, at + 1);
          expect(found, `"${step}" told after the previous step\n${out}`).toBeGreaterThan(at);
          at = found;
        }
        expect(out).toMatch(/offline/);
        expect(out).not.toContain("Mirroring ConfigMap");

        // Over xDS with mTLS: the operator's server wants Envoy's client certificate, and Envoy got everything from it.
        expect(out).toMatch(/xDS server listening on 127\.0\.0\.1:\d+ \(tls: mutual\)/);
        expect(out).toMatch(/--xds-client-ca \S+ca\.crt/);
        // (long command lines are shown broken with " \" before a flag)
        expect(out).toMatch(/--xds-cert \S+envoy\.crt( \\\n)? +--xds-key \S+envoy\.key/);
        expect(out).toMatch(/Envoy connected, node fallback-envoy, delta/);

        // The live change: applied, served by the same Envoy within seconds, the status acknowledged, then restored.
        const live = section("A live change", "Restoring examples/shop.yaml");
        expect(live).toContain('retry-after: 30  {"degraded":true,"items":[]}');
        expect(live).toMatch(/^ +27c27\n +< .*retry-after: "30"\}\n +---\n +> .*retry-after: "10"\}$/m);
        expect(live).toContain("fallbackpolicy.fallback.dev/products configured");
        const delay = /kubectl apply -> Envoy serving it: (\d+\.\d) s, with no Envoy restart/.exec(live);
        expect(delay, live).not.toBeNull();
        console.log(`demo: kubectl apply -> Envoy serving it: ${delay![1]} s`);
        expect(Number(delay![1])).toBeLessThan(5);
        expect(live).toContain('retry-after: 10  {"degraded":true,"items":[]}');
        expect(live).toMatch(/shop\s+products\s+products\s+2\s+True\s+Ready/);
        expect(live).toContain('{"acked":1,"connected":1}');
        expect(section("Restoring examples/shop.yaml", "Sending live traffic")).toMatch(
          /Envoy serves retry-after: 30 again, [\d.]+ s after that kubectl apply/,
        );
        expect(out).toMatch(/^ +live change, apply to Envoy: +\d+\.\d s/m);
        // The printer columns, both policies Ready.
        expect(out).toMatch(/shop\s+products\s+products\s+2\s+True\s+Ready/);
        expect(out).toMatch(/ai\s+llm-gateway\s+llm-gateway\s+3\s+True\s+Ready/);

        // Traffic: not a single client-visible error in any second, and the answers move as they should.
        const seconds = [...out.matchAll(/^ +\[ *\d+s\] +(\d+) requests, (\d+) errors +\| (.*)$/gm)];
        expect(seconds.length, out).toBeGreaterThan(10);
        expect(
          seconds.filter((m) => m[2] !== "0").map((m) => m[0]),
          "seconds with errors",
        ).toEqual([]);
        expect(section("Crashing the primary", "Crashing the cache too")).toMatch(/\| products-cache \d+$/m);
        expect(section("Crashing the cache too", "Bringing products-cache back")).toMatch(/\| static 503 \d+$/m);
        expect(section("Crashing the cache too", "Bringing products-cache back")).toContain(
          'HTTP 503  content-type: application/json  retry-after: 30  {"degraded":true,"items":[]}',
        );
        expect(section("Bringing the primary back", "Summary")).toMatch(/\| products \d+$/m);
        expect(out).toMatch(/products answers again, [\d.]+ s after its restart/);

        expect(out).toMatch(/^ +client-visible errors while the primary was down: 0$/m);
        expect(out).toMatch(/^ +client-visible errors: +0 /m);
        expect(out).not.toContain("!!");

        rmSync(DIR, { recursive: true, force: true }); // kept after a failure, for its logs
      },
    );
  },
);
