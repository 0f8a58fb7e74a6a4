// The bins set their own Node.js flags (operator/bin/node-flags.ts) by relaunching
// themselves: started as plain `node <bin>`, as the image, tests, benchmarks and the demo
// start them, the program that runs has the flags, prints nothing extra and keeps its exit
// code and standard streams.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { FALLBACKCTL_NODE_FLAGS, missingNodeFlags, OPERATOR_NODE_FLAGS } from "../../operator/bin/node-flags.ts";
import { fallbackctlBin, operatorBin, repoRoot } from "../support/paths.ts";

// Preloaded into every process of the run; only the one that really exits reports, since
// execve replaces the first without running its exit handlers.
const REPORT = "REPORT ";
const reporter = `--import=data:text/javascript,process.on("exit",()=>process.stderr.write("\\n${REPORT}"+JSON.stringify({pid:process.pid,execArgv:process.execArgv})+"\\n"))`;

function run(bin: string, args: string[], options: { nodeFlags?: string[]; input?: string } = {}) {
  const child = spawnSync(process.execPath, [...(options.nodeFlags ?? []), reporter, bin, ...args], {
    encoding: "utf8",
    timeout: 30_000,
    input: options.input ?? "",
  });
  const reports = child.stderr
    .split("\n")
    .filter((l) => l.startsWith(REPORT))
    .map((l) => JSON.parse(l.slice(REPORT.length)) as { pid: number; execArgv: string[] });
  const stderr = child.stderr
    .split("\n")
    .filter((l) => !l.startsWith(REPORT))
    .join("\n");
  return { status: child.status, stdout: child.stdout, stderr, reports, pid: child.pid };
}

describe("the bins' Node.js flags", () => {
  it.each([
    ["fallback-operator", operatorBin, ["--help"], OPERATOR_NODE_FLAGS],
    ["fallbackctl", fallbackctlBin, ["--help"], FALLBACKCTL_NODE_FLAGS],
  ])("%s relaunches itself once, in the same process, with its flags", (_name, bin, args, flags) => {
    const result = run(bin, args);
    expect(result.status).toBe(0);
    expect(result.reports).toHaveLength(1);
    expect(result.reports[0]!.pid).toBe(result.pid);
    expect(result.reports[0]!.execArgv.slice(0, flags.length)).toEqual(flags);
    expect(result.stderr).not.toMatch(/warning/i);
  });

  it("fallbackctl keeps stdin, a clean stdout and its exit code across the relaunch", () => {
    const crd = run(fallbackctlBin, ["crd"]);
    expect(crd.status).toBe(0);
    expect(parse(crd.stdout).kind).toBe("CustomResourceDefinition");
    expect(crd.stderr.trim()).toBe("");
    const piped = run(fallbackctlBin, ["validate", "-f", "-"], {
      input: readFileSync(join(repoRoot, "examples/shop.yaml"), "utf8"),
    });
    expect(piped.status).toBe(0);
    expect(piped.stdout).toContain("1 valid, 0 invalid FallbackPolicies");
    expect(run(fallbackctlBin, ["frobnicate"]).status).toBe(2);
  });

  it("a flag given by name keeps the caller's value and needs no relaunch", () => {
    const result = run(fallbackctlBin, ["--help"], { nodeFlags: ["--max-semi-space-size=8"] });
    expect(result.status).toBe(0);
    expect(result.reports[0]!.execArgv.filter((f) => f.startsWith("--max-semi-space-size"))).toEqual([
      "--max-semi-space-size=8",
    ]);
    expect(missingNodeFlags(OPERATOR_NODE_FLAGS, ["--v8_pool_size=1"], "--heap-growing-percent=50")).toEqual([
      "--max-semi-space-size=4",
    ]);
  });
});
