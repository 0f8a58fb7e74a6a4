// Helm and kubectl against the integration project's control plane, for the chart tests.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { helmBinary, helmEnv } from "../../support/helm.ts";
import { kube, kubectl } from "../../support/kubectl.ts";
import { runCommand, type CommandResult } from "../../support/processes.ts";

/** Runs helm with the given kubeconfig and a Helm home of its own; never throws on exit codes. */
export function helm(kubeconfig: string, args: string[], timeoutMs = 120_000): Promise<CommandResult> {
  return runCommand(helmBinary, ["--kubeconfig", kubeconfig, ...args], { timeoutMs, env: helmEnv() });
}

/** The object as JSON, or undefined when it does not exist. */
export async function getObject(kubeconfig: string, args: string[]): Promise<Record<string, any> | undefined> {
  const r = await kubectl(kubeconfig, ["get", ...args, "-o", "json"]);
  if (r.code !== 0) {
    if (/NotFound|not found/.test(r.stderr)) return undefined;
    throw new Error(`kubectl get ${args.join(" ")} failed: ${r.stderr.trim()}`);
  }
  return JSON.parse(r.stdout) as Record<string, any>;
}

/** A kubeconfig with the control plane's server and CA, authenticating with `token`. */
export async function tokenKubeconfig(adminKubeconfig: string, token: string, user: string): Promise<string> {
  const view = JSON.parse(await kube(adminKubeconfig, ["config", "view", "--raw", "-o", "json"])) as {
    clusters: Array<{ cluster: Record<string, string> }>;
  };
  const path = join(mkdtempSync(join(tmpdir(), "chart-sa-kubeconfig-")), "config");
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      "current-context": "sa",
      clusters: [{ name: "local", cluster: view.clusters[0]!.cluster }],
      users: [{ name: user, user: { token } }],
      contexts: [{ name: "sa", context: { cluster: "local", user } }],
    }),
  );
  return path;
}

/** A FallbackPolicy (and the Services it names) in `ns`, from examples/shop.yaml. */
export function shopObjects(ns: string): string {
  return [
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "products", namespace: ns },
      spec: { selector: { app: "products" }, ports: [{ name: "http", port: 8080, targetPort: 8080 }] },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "products-cache", namespace: ns },
      spec: { selector: { app: "products-cache" }, ports: [{ name: "http", port: 8080, targetPort: 8080 }] },
    },
    {
      apiVersion: "fallback.dev/v1alpha1",
      kind: "FallbackPolicy",
      metadata: { name: "products", namespace: ns },
      spec: {
        targetRef: { kind: "Service", name: "products", port: 8080 },
        fallbacks: [
          { service: { name: "products-cache", port: 8080 } },
          {
            staticResponse: { status: 503, body: '{"degraded":true}', headers: { "content-type": "application/json" } },
          },
        ],
        retry: { attempts: 2, perTryTimeout: "500ms", retryOn: ["connect-failure", "reset", "gateway-error"] },
      },
    },
  ]
    .map((o) => JSON.stringify(o))
    .join("\n---\n");
}

/** Manifests of a release as Helm stored them. */
export async function releaseManifest(
  kubeconfig: string,
  release: string,
  ns: string,
): Promise<Array<Record<string, any>>> {
  const r = await helm(kubeconfig, ["get", "manifest", release, "-n", ns]);
  if (r.code !== 0) throw new Error(`helm get manifest: ${r.stderr}`);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as Record<string, any> | null)
    .filter((o): o is Record<string, any> => o !== null);
}
