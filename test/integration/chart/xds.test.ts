// The chart's default, xDS over mTLS, with the real pieces: helm install on the real API
// server, then the real operator with the chart's arguments, the chart's ServiceAccount token
// and the chart's generated server certificate, and the real Envoy on the chart's bootstrap
// ConfigMap with the chart's client certificate. There is no kubelet, so the files of the
// Secrets are written where the pods would mount them, and the addresses become loopback ones;
// the TLS server name stays the xDS Service's, so the certificate's DNS names are checked too.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:tls";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parse, stringify } from "yaml";
import { createTestNamespace, kubectl, kube } from "../../support/kubectl.ts";
import { freePort } from "../../support/ports.ts";
import { ENVOY_BIN } from "../../support/envoy.ts";
import { operatorBin, repoRoot } from "../../support/paths.ts";
import { until } from "../../support/poll.ts";
import { collectOutput, stopChild } from "../../support/processes.ts";
import { chartDir } from "../../support/helm.ts";
import { getObject, helm, shopObjects, tokenKubeconfig } from "./helm.ts";

const kubeconfig = inject("kubeconfig");
const CERT_DIR = "/etc/fallback/xds";
const MOUNT = "/etc/envoy/fallback";

type Proc = { child: ChildProcess; log: () => string };

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Proc {
  const child = spawn(command, args, { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] });
  return { child, log: collectOutput(child) };
}

const stop = async (p: Proc | undefined) => p && stopChild(p.child);

/** Writes a Secret's keys as files into `dir`, as its volume would. */
function writeSecret(secret: Record<string, any>, dir: string) {
  mkdirSync(dir, { recursive: true });
  for (const [key, value] of Object.entries(secret.data as Record<string, string>))
    writeFileSync(join(dir, key), Buffer.from(value, "base64"));
}

/** A TLS handshake with the operator's xDS port as Envoy would make it; resolves with the ALPN protocol. */
function handshake(
  port: number,
  servername: string,
  files: { ca: string; cert?: string; key?: string },
): Promise<string> {
  return new Promise((done, fail) => {
    const socket = connect({
      host: "127.0.0.1",
      port,
      servername,
      ca: files.ca,
      cert: files.cert,
      key: files.key,
      ALPNProtocols: ["h2"],
    });
    socket.once("secureConnect", () => {
      // Under TLS 1.3 the server says no to a missing client certificate after the handshake.
      setTimeout(() => {
        const protocol = String(socket.alpnProtocol);
        socket.destroy();
        done(protocol);
      }, 300);
    });
    socket.once("error", fail);
    socket.once("close", () => fail(new Error("closed by the server")));
  });
}

describe.skipIf(!existsSync(operatorBin) || !existsSync(ENVOY_BIN))(
  "the chart's xDS mode: operator and Envoy over mTLS",
  () => {
    const work = mkdtempSync(join(tmpdir(), "chart-xds-"));
    let ns = "";
    let apps = "";
    let full = "";
    let saKubeconfig = "";
    let operator: Proc | undefined;
    let envoy: Proc | undefined;
    const ports = { health: 0, metrics: 0, xds: 0, listen: 0, admin: 0 };
    const serverDir = join(work, "operator");
    const clientDir = join(work, "envoy");
    let serviceHost = "";
    const podName = `gateway-${randomBytes(3).toString("hex")}`;

    beforeAll(async () => {
      ns = await createTestNamespace(kubeconfig, "chart-xds");
      apps = await createTestNamespace(kubeconfig, "chart-xds-apps");
      const release = `xds-${randomBytes(3).toString("hex")}`;
      full = `${release}-fallback-operator`;
      serviceHost = `${full}-xds.${ns}.svc`;
      // One watched namespace: other test files' policies (several named products/products in
      // namespaces of their own) stay out of this Envoy's config.
      const installed = await helm(kubeconfig, [
        "install",
        release,
        chartDir,
        "-n",
        ns,
        "--set",
        "envoy.enabled=true",
        "--set",
        `watchNamespace=${apps}`,
      ]);
      if (installed.code !== 0) throw new Error(`helm install: ${installed.stderr}`);
      for (const p of Object.keys(ports) as Array<keyof typeof ports>) ports[p] = await freePort();

      // What the pods would mount.
      writeSecret((await getObject(kubeconfig, ["secret", `${full}-xds-server`, "-n", ns]))!, serverDir);
      writeSecret((await getObject(kubeconfig, ["secret", `${full}-xds-client`, "-n", ns]))!, clientDir);

      // The operator: the chart's arguments, on loopback, with the ServiceAccount's token.
      const sa = full;
      const token = (await kube(kubeconfig, ["-n", ns, "create", "token", sa, "--duration=1h"])).trim();
      saKubeconfig = await tokenKubeconfig(kubeconfig, token, sa);
      const deployment = (await getObject(kubeconfig, ["deployment", full, "-n", ns]))!;
      const args = (deployment.spec.template.spec.containers[0].args as string[]).map((a) =>
        a.startsWith("--health-addr=")
          ? `--health-addr=127.0.0.1:${ports.health}`
          : a.startsWith("--metrics-addr=")
            ? `--metrics-addr=127.0.0.1:${ports.metrics}`
            : a.startsWith("--xds-addr=")
              ? `--xds-addr=127.0.0.1:${ports.xds}`
              : a.replace(`${CERT_DIR}/`, `${serverDir}/`),
      );
      operator = run(process.execPath, [operatorBin, "--kubeconfig", saKubeconfig, ...args], {
        ...process.env,
        KUBECONFIG: saKubeconfig,
        POD_NAME: `${full}-0`,
        POD_NAMESPACE: ns,
      });
      await until(
        "the operator's /readyz",
        async () => ((await fetch(`http://127.0.0.1:${ports.health}/readyz`)).ok ? true : undefined),
        60_000,
      ).catch((error) => {
        throw new Error(`${error}\n--- operator log ---\n${operator!.log()}`);
      });

      // Envoy: the chart's bootstrap and command line. Loopback instead of the Service's address
      // (the server name stays the Service's), the client Secret's files where they are written,
      // and a listener of its own (fallbackctl bootstrap --listen's node metadata).
      const cm = (await getObject(kubeconfig, ["configmap", `${full}-envoy-bootstrap`, "-n", ns]))!;
      const bootstrapText = (cm.data["bootstrap.yaml"] as string).replaceAll(`${CERT_DIR}/`, `${clientDir}/`);
      const bootstrap = parse(bootstrapText) as Record<string, any>;
      const address =
        bootstrap.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address
          .socket_address;
      expect(address).toEqual({ address: serviceHost, port_value: 18000 });
      address.address = "127.0.0.1";
      address.port_value = ports.xds;
      bootstrap.admin.address.socket_address.port_value = ports.admin;
      bootstrap.node.metadata = { "fallback.dev/listen": `127.0.0.1:${ports.listen}` };
      const mountDir = join(work, MOUNT);
      mkdirSync(mountDir, { recursive: true });
      writeFileSync(join(mountDir, "bootstrap.yaml"), stringify(bootstrap));
      const gateway = (await getObject(kubeconfig, ["deployment", `${full}-envoy`, "-n", ns]))!;
      const envoyArgs = (gateway.spec.template.spec.containers[0].args as string[]).map((a) =>
        a === `${MOUNT}/bootstrap.yaml` ? join(mountDir, "bootstrap.yaml") : a === "$(POD_NAME)" ? podName : a,
      );
      envoy = run(ENVOY_BIN, [...envoyArgs, "--disable-hot-restart"]);
    }, 120_000);

    afterAll(async () => {
      await stop(envoy);
      await stop(operator);
      if (saKubeconfig) rmSync(dirname(saKubeconfig), { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
    });

    it("brings a policy to Ready once the chart's Envoy acknowledged it over mTLS, with no forbidden", async () => {
      await kube(kubeconfig, ["apply", "-f", "-"], shopObjects(apps));
      const ready = await kubectl(
        kubeconfig,
        ["-n", apps, "wait", "fallbackpolicy/products", "--for=condition=Ready", "--timeout=60s"],
        { timeoutMs: 90_000 },
      );
      expect(
        ready.code,
        `${ready.stderr}\n--- operator log ---\n${operator!.log()}\n--- envoy log ---\n${envoy!.log()}`,
      ).toBe(0);
      const policy = await until("status.proxies to count the Envoy", async () => {
        const p = await getObject(kubeconfig, ["fallbackpolicy", "products", "-n", apps]);
        return p?.status?.proxies?.acked >= 1 ? p : undefined;
      });
      expect(policy.status.proxies).toEqual({ connected: 1, acked: 1 });

      // Envoy serves the listener the operator sent (an unknown Host gets Envoy's 404).
      const res = await until("Envoy's listener", async () =>
        fetch(`http://127.0.0.1:${ports.listen}/`, { headers: { host: "no-such-host.example" } }),
      );
      expect(res.status).toBe(404);
      // Named by its pod (--service-node $(POD_NAME)) in the operator's log.
      expect(operator!.log()).toMatch(
        new RegExp(`"node":"${podName}"[^\\n]*Envoy connected|Envoy connected[^\\n]*"node":"${podName}"`),
      );
      expect(operator!.log()).not.toMatch(/forbidden/i);
      // No ConfigMap is written in this mode.
      expect(await getObject(kubeconfig, ["configmap", "fallback-envoy", "-n", ns])).toBeUndefined();
    });

    it("serves TLS for the xDS Service's name and refuses a client without the chart's client certificate", async () => {
      const files = {
        ca: readFileSync(join(clientDir, "ca.crt"), "utf8"),
        cert: readFileSync(join(clientDir, "tls.crt"), "utf8"),
        key: readFileSync(join(clientDir, "tls.key"), "utf8"),
      };
      expect(await handshake(ports.xds, serviceHost, files)).toBe("h2");
      await expect(handshake(ports.xds, serviceHost, { ca: files.ca })).rejects.toThrow();
      // The certificate is not good for another name.
      await expect(handshake(ports.xds, "elsewhere.example", files)).rejects.toThrow(/altnames|Hostname/i);
    });
  },
);
