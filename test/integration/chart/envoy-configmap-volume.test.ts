// Why the chart's gateway in the ConfigMap mode (envoy.configSource=configmap; the default is
// xDS, see xds.test.ts) mounts the operator's ConfigMap as a directory and never with subPath: the
// kubelet updates a ConfigMap volume by writing a new timestamped folder and renaming a
// `..data` symlink over the old one. This test builds exactly that layout around the files
// the operator generates, starts the real Envoy the way the chart's gateway does
// (`envoy -c <dir>/bootstrap.yaml`), swaps `..data` like the kubelet, and shows Envoy loads
// the new clusters and listeners without a restart.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { main as fallbackctl } from "../../../operator/src/cli/main.ts";
import { ENVOY_BIN } from "../../support/envoy.ts";
import { repoRoot } from "../../support/paths.ts";
import { until } from "../../support/poll.ts";
import { freePort } from "../../support/ports.ts";

const FILES = ["bootstrap.yaml", "cds.yaml", "lds.yaml"];

/** fallbackctl render --format xds, with the mount folder as the watched config dir. */
function render(out: string, mountDir: string, listen: number, admin: number, inputs: string[]) {
  const errors: string[] = [];
  const code = fallbackctl(
    [
      "render",
      ...inputs.flatMap((f) => ["-f", join(repoRoot, f)]),
      "--format",
      "xds",
      "-o",
      out,
      "--config-dir",
      mountDir,
      "--listen",
      `127.0.0.1:${listen}`,
      "--admin",
      `127.0.0.1:${admin}`,
    ],
    { stdout: () => {}, stderr: (s) => errors.push(s) },
  );
  if (code !== 0) throw new Error(`fallbackctl render failed: ${errors.join("")}`);
  return Object.fromEntries(FILES.map((f) => [f, readFileSync(join(out, f), "utf8")]));
}

/** What the kubelet's AtomicWriter does for one ConfigMap volume update. */
class ConfigMapVolume {
  private generation = 0;
  private current: string | undefined;
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
  }
  write(files: Record<string, string>, source: (name: string) => string) {
    const ts = `..2026_01_01_00_00_0${this.generation++}.000000000`;
    mkdirSync(join(this.dir, ts));
    for (const name of Object.keys(files)) renameSync(source(name), join(this.dir, ts, name));
    symlinkSync(ts, join(this.dir, "..data_tmp"));
    renameSync(join(this.dir, "..data_tmp"), join(this.dir, "..data"));
    for (const name of Object.keys(files)) {
      if (!existsSync(join(this.dir, name))) symlinkSync(join("..data", name), join(this.dir, name));
    }
    if (this.current) rmSync(join(this.dir, this.current), { recursive: true });
    this.current = ts;
  }
}

describe.skipIf(!existsSync(ENVOY_BIN))("Envoy on a ConfigMap volume (the chart's gateway)", () => {
  const work = mkdtempSync(join(tmpdir(), "envoy-cm-volume-"));
  const mountDir = join(work, "etc/envoy/fallback");
  const volume = new ConfigMapVolume(mountDir);
  let envoy: ChildProcess | undefined;
  let log = "";
  let admin = 0;
  let listen = 0;

  const versions = async () => {
    const res = await fetch(`http://127.0.0.1:${admin}/config_dump`);
    if (!res.ok) return undefined;
    const dump = (await res.json()) as { configs: Array<Record<string, unknown>> };
    const find = (suffix: string) => dump.configs.find((c) => String(c["@type"]).endsWith(suffix));
    const clusters = find("ClustersConfigDump") as {
      version_info?: string;
      dynamic_active_clusters?: Array<{ cluster: { name: string } }>;
    };
    const listeners = find("ListenersConfigDump") as { version_info?: string };
    return {
      cds: clusters?.version_info,
      lds: listeners?.version_info,
      clusters: (clusters?.dynamic_active_clusters ?? []).map((c) => c.cluster.name),
    };
  };
  const versionOf = (text: string) => (parse(text) as { version_info: string }).version_info;

  beforeAll(async () => {
    admin = await freePort();
    listen = await freePort();
    const first = render(join(work, "render-1"), mountDir, listen, admin, ["examples/shop.yaml"]);
    volume.write(first, (name) => join(work, "render-1", name));
    // Exactly the chart's command line: envoy -c <mount>/bootstrap.yaml.
    envoy = spawn(ENVOY_BIN, ["-c", join(mountDir, "bootstrap.yaml"), "--log-level", "info", "--disable-hot-restart"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    envoy.stdout!.on("data", (d) => (log += d));
    envoy.stderr!.on("data", (d) => (log += d));
  }, 60_000);

  afterAll(async () => {
    if (envoy && envoy.exitCode === null) {
      envoy.kill("SIGTERM");
      await new Promise((r) => envoy!.once("exit", r));
    }
    rmSync(work, { recursive: true, force: true });
  });

  it("starts from bootstrap.yaml in the mounted folder and serves the first config", async () => {
    const first = readFileSync(join(mountDir, "cds.yaml"), "utf8");
    const seen = await until("Envoy to load cds.yaml/lds.yaml", async () => {
      const v = await versions();
      return v?.cds && v.lds ? v : undefined;
    }).catch((error) => {
      throw new Error(`${error}\n--- envoy log ---\n${log}`);
    });
    expect(seen.cds).toBe(versionOf(first));
    expect(seen.lds).toBe(versionOf(readFileSync(join(mountDir, "lds.yaml"), "utf8")));
    // The chart's readiness probe: the HTTP listener accepts connections.
    const res = await fetch(`http://127.0.0.1:${listen}/`, { headers: { host: "no-such-host.example" } });
    expect(res.status).toBe(404);
  });

  it("reloads when the kubelet swaps ..data, without a restart", async () => {
    const before = await versions();
    const second = render(join(work, "render-2"), mountDir, listen, admin, ["examples/shop.yaml", "examples/ai.yaml"]);
    expect(versionOf(second["cds.yaml"]!)).not.toBe(before?.cds);
    volume.write(second, (name) => join(work, "render-2", name));

    const after = await until("Envoy to load the swapped config", async () => {
      const v = await versions();
      return v?.cds === versionOf(second["cds.yaml"]!) && v.lds === versionOf(second["lds.yaml"]!) ? v : undefined;
    }).catch((error) => {
      throw new Error(`${error}\n--- envoy log ---\n${log}`);
    });
    expect(after.clusters.length).toBeGreaterThan(before!.clusters.length);
    expect(after.clusters.some((name) => name.includes("llm-gateway"))).toBe(true);
    expect(envoy!.exitCode).toBeNull();
  });
});
