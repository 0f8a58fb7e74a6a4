// One real control plane for the whole integration project, on a free port and in a
// folder of its own (.local/test-controlplane-<pid>), so parallel runs and
// `make cluster-up` do not collide. Test files read its kubeconfig with
// `inject("kubeconfig")` and work in namespaces of their own (createTestNamespace).
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { repoRoot, startControlPlane } from "../harness/controlplane.ts";

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
  process.env.KUBECONFIG = cp.kubeconfigPath; // for child processes the tests spawn
  project.provide("kubeconfig", cp.kubeconfigPath);
  return async () => {
    const t = performance.now();
    await cp.stop();
    console.log(`[integration] control plane stopped in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    rmSync(dir, { recursive: true, force: true });
  };
}
