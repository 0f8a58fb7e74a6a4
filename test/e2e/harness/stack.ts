// The whole product on this machine, for tests of what traffic does: a real API server with
// the CRD, the operator serving xDS, and one Envoy on the bootstrap `fallbackctl bootstrap`
// prints (Delta). The test's objects are applied before Envoy starts, so that it starts
// with them.
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../../support/ports.ts";
import { repoRoot } from "../../support/paths.ts";
import { startControlPlane, type ControlPlane } from "../../support/controlplane.ts";
import { apply, kube } from "../../support/kubectl.ts";
import { startOperator, type RunningOperator } from "../../support/operator.ts";
import { startProxy, type Proxy } from "../../support/proxy.ts";

export type Stack = {
  cp: ControlPlane;
  kubeconfig: string;
  operator: RunningOperator;
  proxy: Proxy;
  /** kubectl that throws on failure and returns stdout. */
  kubectl(args: string[], input?: string): Promise<string>;
  stop(): Promise<void>;
};

/** `name` names the working folder (.local/e2e-NAME-PID); `namespaces` are created before `objects` are applied. */
export async function startStack(options: {
  name: string;
  namespaces: string[];
  objects: object[];
  operatorArgs?: string[];
}): Promise<Stack> {
  const dir = join(repoRoot, ".local", `e2e-${options.name}-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  let cp: ControlPlane | undefined;
  let operator: RunningOperator | undefined;
  let proxy: Proxy | undefined;
  const stop = async () => {
    if (process.env.DEBUG_E2E) console.log(operator?.output().slice(-5000));
    await proxy?.stop();
    await operator?.stop();
    await cp?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    cp = await startControlPlane({ dir: join(dir, "controlplane") });
    const kc = cp.kubeconfigPath;
    await kube(kc, ["apply", "-f", join(repoRoot, "crds")]);
    await kube(kc, ["wait", "--for", "condition=Established", "crd/fallbackpolicies.fallback.dev"]);
    for (const ns of [...options.namespaces, "fallback-system"]) await kube(kc, ["create", "namespace", ns]);
    const [xdsPort, listenPort] = [await freePort(), await freePort()];
    operator = await startOperator({
      kubeconfig: kc,
      configNamespace: "fallback-system",
      args: [
        "--xds-addr",
        `127.0.0.1:${xdsPort}`,
        "--xds-plaintext",
        "--envoy-listen",
        `127.0.0.1:${listenPort}`,
        ...(options.operatorArgs ?? []),
      ],
    });
    await apply(kc, options.objects);
    proxy = await startProxy({
      dir,
      xdsServers: [`127.0.0.1:${xdsPort}`],
      nodeId: `gateway-${options.name}`,
      listen: listenPort,
    });
    return { cp, kubeconfig: kc, operator, proxy, kubectl: (args, input) => kube(kc, args, input), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
