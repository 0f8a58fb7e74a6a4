// One real control plane for the whole integration project, on a free port and in a
// folder of its own (.local/test-controlplane-<pid>), so parallel runs and
// `make cluster-up` do not collide. Test files read its kubeconfig with
// `inject("kubeconfig")` and work in namespaces of their own (createTestNamespace).
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { kubectl } from "../support/kubectl.ts";
import { repoRoot } from "../support/paths.ts";
import { startControlPlane } from "../support/controlplane.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** Admin kubeconfig of the integration project's control plane. */
    kubeconfig: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = join(repoRoot, ".local", `test-controlplane-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  const cp = await startControlPlane({ dir });
  console.log(`[integration] control plane on ${cp.server} ready in ${(cp.startupMs / 1000).toFixed(1)} s (${dir})`);
  // The CRD is cluster-wide: install it once, for every file (crd.test.ts checks it in detail).
  for (const args of [
    ["apply", "-f", join(repoRoot, "crds")],
    ["wait", "--for", "condition=Established", "--timeout", "60s", "crd/fallbackpolicies.fallback.dev"],
  ]) {
    const r = await kubectl(cp.kubeconfigPath, args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  }
  process.env.KUBECONFIG = cp.kubeconfigPath; // for child processes the tests spawn
  project.provide("kubeconfig", cp.kubeconfigPath);
  return async () => {
    const t = performance.now();
    await cp.stop();
    console.log(`[integration] control plane stopped in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    rmSync(dir, { recursive: true, force: true });
  };
}
