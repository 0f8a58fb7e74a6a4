// fallback-operator's flags: defaults, environment, and a clear usage error for bad input.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { KubeConfig } from "../../operator/src/kopf/index.ts";
import { loadKubeconfigs, parseFlags } from "../../operator/src/controller/main.ts";

describe("fallback-operator flags", () => {
  it("defaults to the pod's namespace, all namespaces, and Envoy's standard paths", () => {
    const f = parseFlags([], { POD_NAMESPACE: "fallback-system" });
    expect(f.configMap).toEqual({ namespace: "fallback-system", name: "fallback-envoy" });
    expect(f.watchNamespace).toBeUndefined();
    expect(f.metrics).toEqual({ address: "0.0.0.0", port: 8080 });
    expect(f.health).toEqual({ address: "0.0.0.0", port: 8081 });
    expect(f.leaderElect).toBe(false);
    expect(f.compile.configDir).toBe("/etc/envoy/fallback");
    expect(f.configLimitBytes).toBe(1024 * 1024);
  });

  it("reads every flag", () => {
    const f = parseFlags(
      [
        "--kubeconfig",
        "/k",
        "--config-namespace",
        "edge",
        "--config-name",
        "gw",
        "--watch-namespace",
        "apps",
        "--metrics-addr",
        "127.0.0.1:0",
        "--health-addr",
        "[::1]:9000",
        "--leader-elect",
        "--log-level",
        "debug",
        "--envoy-config-dir",
        "/cfg",
        "--envoy-listen",
        "127.0.0.1:10001",
        "--envoy-admin",
        "127.0.0.1:9902",
        "--cluster-domain",
        "corp.local",
        "--trusted-ca",
        "/ca.pem",
        "--config-limit-bytes",
        "5000",
      ],
      {},
    );
    expect(f).toMatchObject({
      kubeconfig: ["/k"],
      configMap: { namespace: "edge", name: "gw" },
      watchNamespace: "apps",
      metrics: { address: "127.0.0.1", port: 0 },
      health: { address: "::1", port: 9000 },
      leaderElect: true,
      logLevel: "debug",
      compile: {
        configDir: "/cfg",
        listen: { address: "127.0.0.1", port: 10001 },
        admin: { port: 9902 },
        clusterDomain: "corp.local",
        trustedCA: "/ca.pem",
      },
      configLimitBytes: 5000,
    });
  });

  it("runs no xDS server and writes the ConfigMap unless told otherwise", () => {
    const f = parseFlags([], {});
    expect(f.xds).toBeUndefined();
    expect(f.configMapOutput).toBe(true);
  });

  it("runs the xDS server when any --xds flag is given: TLS from files, or plaintext when asked, and then no ConfigMap", () => {
    const tls = parseFlags(["--xds-tls-cert", "/c.pem", "--xds-tls-key", "/k.pem", "--xds-client-ca", "/ca.pem"], {});
    expect(tls.xds).toEqual({
      listen: { address: "0.0.0.0", port: 18000 },
      tls: { cert: "/c.pem", key: "/k.pem", clientCA: "/ca.pem" },
    });
    expect(tls.configMapOutput).toBe(false);
    const plain = parseFlags(["--xds-addr", "127.0.0.1:0", "--xds-plaintext"], {});
    expect(plain.xds).toEqual({ listen: { address: "127.0.0.1", port: 0 } });
    expect(parseFlags(["--xds-plaintext", "--config-output", "configmap"], {}).configMapOutput).toBe(true);
  });

  it("reads $KUBECONFIG as a list, as kubectl does, and merges the files", () => {
    const fixtures = "test/unit/fixtures";
    expect(
      parseFlags([], { KUBECONFIG: `${fixtures}/unreachable.kubeconfig:${fixtures}/second.kubeconfig` }).kubeconfig,
    ).toEqual([`${fixtures}/unreachable.kubeconfig`, `${fixtures}/second.kubeconfig`]);
    expect(parseFlags(["--kubeconfig", "/k"], { KUBECONFIG: "/a:/b" }).kubeconfig).toEqual(["/k"]);
    expect(parseFlags([], {}).kubeconfig).toBeUndefined();

    const merged = new KubeConfig();
    loadKubeconfigs(merged, [`${fixtures}/unreachable.kubeconfig`, `${fixtures}/second.kubeconfig`]);
    expect(merged.currentContext).toBe("nowhere");
    expect(merged.contexts.map((c) => c.name)).toEqual(["nowhere", "elsewhere"]);
    const noContextFirst = new KubeConfig();
    loadKubeconfigs(noContextFirst, [`${fixtures}/no-context.kubeconfig`, `${fixtures}/second.kubeconfig`]);
    expect(noContextFirst.currentContext).toBe("elsewhere");
  });

  it.each([
    [["--metrics-addr", "nope"], "--metrics-addr must be HOST:PORT"],
    [["--log-level", "loud"], "--log-level must be one of"],
    [["--config-limit-bytes", "0"], "--config-limit-bytes must be a positive integer"],
    [["--frobnicate"], "Unknown option '--frobnicate'"],
    [["--xds-addr", ":18000"], "needs --xds-tls-cert and --xds-tls-key (TLS), or --xds-plaintext"],
    [["--xds-tls-cert", "/c.pem"], "needs --xds-tls-cert and --xds-tls-key"],
    [["--xds-plaintext", "--xds-client-ca", "/ca.pem"], "--xds-plaintext cannot go with"],
    [["--config-output", "files"], "--config-output must be configmap or none"],
  ])("exits 2 with usage for %j", (args, message) => {
    const run = spawnSync(process.execPath, ["operator/bin/fallback-operator.ts", ...args], { encoding: "utf8" });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(message);
    expect(run.stderr).toContain("Usage: fallback-operator");
    expect(run.stderr).not.toMatch(/at .*\.ts:\d+/); // no stack trace
  });

  it("exits 1, with a log line and no stack trace, when it cannot start", async () => {
    const { createServer } = await import("node:net");
    const taken = createServer();
    await new Promise<void>((done) => taken.listen(0, "127.0.0.1", done));
    const port = (taken.address() as { port: number }).port;
    try {
      const kubeconfig = "test/unit/fixtures/unreachable.kubeconfig";
      const bin = "operator/bin/fallback-operator.ts";
      // The health port is taken: the framework's start fails.
      const busy = spawnSync(
        process.execPath,
        [
          bin,
          "--kubeconfig",
          kubeconfig,
          "--config-namespace",
          "x",
          "--health-addr",
          `127.0.0.1:${port}`,
          "--metrics-addr",
          "127.0.0.1:0",
        ],
        { encoding: "utf8", timeout: 20_000 },
      );
      expect(busy.status).toBe(1);
      expect(busy.stdout).toContain("operator failed to start");
      // The metrics port is taken.
      const metrics = spawnSync(
        process.execPath,
        [
          bin,
          "--kubeconfig",
          kubeconfig,
          "--config-namespace",
          "x",
          "--health-addr",
          "127.0.0.1:0",
          "--metrics-addr",
          `127.0.0.1:${port}`,
        ],
        { encoding: "utf8", timeout: 20_000 },
      );
      expect(metrics.status).toBe(1);
      expect(metrics.stdout).toContain("metrics server failed to start");
      // No kubeconfig where it says.
      const missing = spawnSync(
        process.execPath,
        [bin, "--kubeconfig", "/nonexistent/kubeconfig", "--config-namespace", "x"],
        { encoding: "utf8", timeout: 20_000 },
      );
      expect(missing.status).toBe(1);
      expect(missing.stdout).toContain("cannot load the kubeconfig");
      for (const run of [busy, metrics, missing]) expect(run.stdout + run.stderr).not.toMatch(/at .*\.ts:\d+/);
    } finally {
      taken.close();
    }
  });
});
