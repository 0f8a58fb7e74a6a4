// kubectl against a kubeconfig: how tests, benchmarks and the demo talk to an API server
// (every step one a reader could type), plus the few shapes they all read back.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./paths.ts";
import { runCommand, type CommandResult } from "./processes.ts";

export const kubectlBinary = join(repoRoot, ".local/bin/kubectl");

export type KubectlResult = CommandResult;

/** Runs .local/bin/kubectl against `kubeconfig`; never throws on a non-zero exit. */
export function kubectl(
  kubeconfig: string,
  args: string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<KubectlResult> {
  return runCommand(
    existsSync(kubectlBinary) ? kubectlBinary : "kubectl",
    ["--kubeconfig", kubeconfig, ...args],
    options,
  );
}

/**
 * Creates a namespace named `<prefix>-<random>` (a valid DNS label) and returns its name.
 * Nothing deletes it: without a namespace controller a deleted namespace stays Terminating,
 * so tests isolate by namespace and the whole control plane goes at teardown.
 */
export async function createTestNamespace(kubeconfig: string, prefix: string): Promise<string> {
  const base =
    prefix
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 50) || "test";
  const name = `${base}-${randomBytes(4).toString("hex")}`;
  const result = await kubectl(kubeconfig, ["create", "namespace", name]);
  if (result.code !== 0) throw new Error(`kubectl create namespace ${name}: ${result.stderr.trim()}`);
  return name;
}

/** kubectl that returns its stdout, and throws with its stderr (or stdout) on a non-zero exit. */
export async function kube(kubeconfig: string, args: string[], input?: string, timeoutMs?: number): Promise<string> {
  const r = await kubectl(kubeconfig, args, {
    ...(input !== undefined ? { input } : {}),
    ...(timeoutMs ? { timeoutMs } : {}),
  });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** kubectl get -o json, or undefined when not found. */
export async function getJson<T = any>(kubeconfig: string, args: string[]): Promise<T | undefined> {
  const r = await kubectl(kubeconfig, ["get", ...args, "-o", "json"]);
  if (r.code !== 0) {
    if (/NotFound|not found/.test(r.stderr)) return undefined;
    throw new Error(`kubectl get ${args.join(" ")}: ${r.stderr.trim()}`);
  }
  return JSON.parse(r.stdout) as T;
}

/** kubectl apply -f - of objects given as data. */
export const apply = (kubeconfig: string, objects: object[]) =>
  kube(kubeconfig, ["apply", "-f", "-"], objects.map((o) => JSON.stringify(o)).join("\n---\n"));
