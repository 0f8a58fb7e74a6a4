import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../../operator/src/cli/main.ts";
import { envoyValidate } from "../support/envoy.ts";
import { EXAMPLES_DIR } from "../support/fixtures.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const INVALID = resolve(ROOT, "test/fixtures/invalid");

function run(...argv: string[]) {
  let stdout = "";
  let stderr = "";
  const code = main(argv, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
  return { code, stdout, stderr };
}

const tempDir = () => mkdtempSync(join(tmpdir(), "fallbackctl-"));

describe("fallbackctl", () => {
  it("renders the examples into a bootstrap the real Envoy accepts", () => {
    const { code, stdout } = run(
      "render",
      "-f",
      EXAMPLES_DIR,
      "--listen",
      "127.0.0.1:18000",
      "--admin",
      "127.0.0.1:18001",
    );
    expect(code).toBe(0);
    expect(stdout).toContain("port_value: 18000");
    expect(envoyValidate(stdout)).toBe("");
  });

  it("writes the xDS file set whose bootstrap watches the folder", () => {
    const dir = tempDir();
    const { code } = run("render", "-f", EXAMPLES_DIR, "--format", "xds", "-o", dir);
    expect(code).toBe(0);
    const bootstrap = readFileSync(join(dir, "bootstrap.yaml"), "utf8");
    expect(bootstrap).toContain(`path: ${dir}/cds.yaml`);
    expect(bootstrap).toContain("watched_directory:");
    expect(readFileSync(join(dir, "cds.yaml"), "utf8")).toContain("envoy.clusters.aggregate");
    expect(readFileSync(join(dir, "lds.yaml"), "utf8")).toContain("fallback-http");
  });

  it("validates good input with exit 0", () => {
    expect(run("validate", "-f", EXAMPLES_DIR)).toMatchObject({
      code: 0,
      stdout: "2 valid, 0 invalid FallbackPolicies\n",
    });
  });

  it("reports each problem on one line naming object and field, exit 1", () => {
    const { code, stderr } = run(
      "validate",
      "-f",
      join(INVALID, "attempts-negative.yaml"),
      "-f",
      join(INVALID, "static-not-last.yaml"),
    );
    expect(code).toBe(1);
    expect(stderr).toBe(
      "FallbackPolicy default/attempts-negative: spec.retry.attempts: must be >= 0\n" +
        "FallbackPolicy default/static-not-last: spec.fallbacks: staticResponse is only allowed as the last fallback\n",
    );
  });

  it("writes nothing when any policy is invalid", () => {
    const dir = join(tempDir(), "out");
    const { code } = run(
      "render",
      "-f",
      EXAMPLES_DIR,
      "-f",
      join(INVALID, "unknown-field.yaml"),
      "--format",
      "xds",
      "-o",
      dir,
    );
    expect(code).toBe(1);
    expect(existsSync(dir)).toBe(false);
  });

  it("warns about unresolved references but still renders", () => {
    const { code, stderr } = run("render", "-f", join(ROOT, "test/golden/cases/missing-fallback-service.in.yaml"));
    expect(code).toBe(0);
    expect(stderr).toContain(
      "warning: FallbackPolicy shop/products: ResolvedRefs: Service shop/products-replica not found",
    );
  });

  it("says which backends' credentials a rendered file leaves out (they travel over SDS only)", () => {
    const { code, stderr } = run("render", "-f", join(ROOT, "test/golden/cases/external-credentials.in.yaml"));
    expect(code).toBe(0);
    expect(stderr).toContain(
      "warning: FallbackPolicy ai/chat: llm.backup.example sends its own credential, which reaches Envoy only from the operator's xDS server (SDS)",
    );
  });

  it("names the file and line of broken YAML, without a stack trace", () => {
    const file = join(tempDir(), "broken.yaml");
    writeFileSync(file, "kind: FallbackPolicy\nspec: [unclosed\n");
    const { code, stderr } = run("validate", "-f", file);
    expect(code).toBe(1);
    expect(stderr).toMatch(new RegExp(`^fallbackctl: ${file}:\\d+:\\d+: `));
    expect(stderr).not.toContain("    at ");
  });

  it("fails with exit 1 on a missing file", () => {
    expect(run("validate", "-f", "/nonexistent.yaml")).toMatchObject({
      code: 1,
      stderr: "fallbackctl: /nonexistent.yaml: no such file or directory\n",
    });
  });

  it.each([
    [["frobnicate"], "unknown command"],
    [[], "a command is required"],
    [["render"], "at least one -f PATH is required"],
    [["render", "-f", "x", "--format", "json"], "--format must be bootstrap or xds"],
    [["render", "-f", "x", "--format", "xds"], "-o DIR is required"],
    [["render", "-f", "x", "--listen", "nope"], "--listen must be HOST:PORT"],
    [["validate", "--bogus"], "Unknown option '--bogus'"],
  ])("exits 2 with usage for %j", (argv, message) => {
    const { code, stderr } = run(...argv);
    expect(code).toBe(2);
    expect(stderr).toContain(message);
    expect(stderr).toContain("Usage:");
  });

  it("reads standard input and runs as a real process (npx fallbackctl)", () => {
    const child = spawnSync("npx", ["--no-install", "fallbackctl", "validate", "-f", "-"], {
      cwd: ROOT,
      input: readFileSync(join(EXAMPLES_DIR, "shop.yaml")),
      encoding: "utf8",
    });
    // npm itself may warn about the machine's own npm config; nothing else may be said.
    expect(child.stderr.split("\n").filter((l) => l && !l.startsWith("npm warn"))).toEqual([]);
    expect(child.stdout).toBe("1 valid, 0 invalid FallbackPolicies\n");
    expect(child.status).toBe(0);
  });
});

describe("CRD", () => {
  it("crds/ holds exactly what `fallbackctl crd` prints (run `make crds` after a schema change)", () => {
    const { stdout } = run("crd");
    expect(readFileSync(join(ROOT, "crds/fallback.dev_fallbackpolicies.yaml"), "utf8")).toBe(stdout);
  });
});
