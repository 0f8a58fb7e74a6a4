// Helpers for the chart tests: run the project's helm (.local/bin/helm) and parse its output.
import { spawnSync } from "node:child_process";
import { parseAllDocuments } from "yaml";
import { chartDir, helmBin, helmEnv } from "../../support/helm.ts";
import { repoRoot } from "../../support/paths.ts";

export interface HelmResult {
  status: number;
  stdout: string;
  stderr: string;
}

export function helm(args: string[]): HelmResult {
  const run = spawnSync(helmBin(), args, {
    cwd: repoRoot,
    encoding: "utf8",
    env: helmEnv(),
  });
  if (run.error) throw run.error;
  return { status: run.status ?? -1, stdout: run.stdout, stderr: run.stderr };
}

export type Values = Record<string, string | number | boolean | null>;

/** --set style flags for a flat record of values. Strings go through --set-string; null
 * removes the key (Helm's way to drop a default). */
export function setFlags(values: Values): string[] {
  return Object.entries(values).flatMap(([key, value]) =>
    typeof value === "string" ? ["--set-string", `${key}=${value}`] : ["--set", `${key}=${String(value)}`],
  );
}

// A loose view of a rendered Kubernetes object: tests reach into it by path.
export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: any };
  [k: string]: any;
};

export interface Rendered {
  objects: K8sObject[];
}

export const RELEASE = "fo";
export const NAMESPACE = "fallback-system";

/** helm template with the given values; fails the test when helm fails. */
export function template(values: Values = {}, extra: string[] = []): Rendered {
  const run = helm([
    "template",
    RELEASE,
    chartDir,
    "--namespace",
    NAMESPACE,
    "--include-crds",
    ...setFlags(values),
    ...extra,
  ]);
  if (run.status !== 0) throw new Error(`helm template failed (${run.status}):\n${run.stderr}`);
  const objects: K8sObject[] = [];
  for (const doc of parseAllDocuments(run.stdout)) {
    if (doc.errors.length > 0) throw new Error(`helm template printed invalid YAML: ${doc.errors[0]?.message}`);
    const value = doc.toJS() as K8sObject | null;
    if (value) objects.push(value);
  }
  return { objects };
}

/** The rendered NOTES.txt (helm install --dry-run=client needs no cluster). */
export function notes(values: Values = {}): string {
  const run = helm(["install", RELEASE, chartDir, "--namespace", NAMESPACE, "--dry-run=client", ...setFlags(values)]);
  if (run.status !== 0) throw new Error(`helm install --dry-run failed (${run.status}):\n${run.stderr}`);
  const at = run.stdout.indexOf("NOTES:\n");
  if (at < 0) throw new Error("helm install --dry-run printed no NOTES");
  return run.stdout.slice(at + "NOTES:\n".length);
}

export function ofKind(rendered: Rendered, kind: string): K8sObject[] {
  return rendered.objects.filter((o) => o.kind === kind);
}

export function one(rendered: Rendered, kind: string, name?: string): K8sObject {
  const found = ofKind(rendered, kind).filter((o) => name === undefined || o.metadata.name === name);
  if (found.length !== 1) {
    throw new Error(
      `expected one ${kind}${name ? ` ${name}` : ""}, found ${found.map((o) => o.metadata.name).join(", ") || "none"}`,
    );
  }
  return found[0]!;
}
