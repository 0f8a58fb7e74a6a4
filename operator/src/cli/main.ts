// fallbackctl: renders and validates FallbackPolicies offline, exactly as the operator
// compiles them in a cluster. Exit codes: 0 ok, 1 invalid input, 2 usage error.
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { crdYaml } from "../api/crd.ts";
import { compile } from "../compile/compile.ts";
import { renderBootstrap, renderConfigFiles } from "../compile/config-files.ts";
import { toMs } from "../compile/duration.ts";
import { adsBootstrap, type AdsBootstrapOptions } from "../compile/envoy/bootstrap.ts";
import { defaultOptions, parseHostPort, snapshotFromObjects, type CompileOptions } from "../compile/snapshot.ts";
import { problemLine } from "../compile/inputs.ts";
import { credentialsNeedXds } from "../compile/results.ts";
import { toYaml } from "../compile/yaml.ts";
import { InputError, readObjects } from "./input.ts";

const USAGE = `Usage:
  fallbackctl render   -f PATH... [--format bootstrap|xds] [-o DIR] [--listen HOST:PORT]
                       [--admin HOST:PORT] [--cluster-domain D] [--config-dir DIR] [--trusted-ca FILE]
  fallbackctl validate -f PATH...
  fallbackctl bootstrap --xds-server HOST:PORT [--xds-server HOST:PORT...] [--listen HOST:PORT]
                       [--admin HOST:PORT] [--node-id ID] [--node-cluster NAME] [--sotw] [--all-stats]
                       [--stats-interval DURATION]
                       [--xds-ca FILE [--xds-cert FILE --xds-key FILE] [--xds-server-name NAME]]
  fallbackctl crd
  fallbackctl mcp      [--kubeconfig PATH [--allow-writes]] [--http HOST:PORT]

PATH is a YAML file, a folder of them, or - for standard input. The input holds
FallbackPolicy, Service and discovery.k8s.io/v1 EndpointSlice objects.

bootstrap prints the Envoy bootstrap that gets everything from the operator's xDS server
(Delta ADS; --sotw for state-of-the-world). --listen makes this Envoy's listener bind there
instead of where the operator says (several Envoys on one host). Envoy keeps the stats a
fallback is read by (--all-stats: every stat, some 150 per cluster), and reports them to the
operator every --stats-interval (default 5s), which tells from them who serves. The --xds-* files are
paths in Envoy's file system: the CA that signed the operator's certificate, and for mTLS
the client certificate and key; without --xds-ca the connection is plaintext.

mcp is a Model Context Protocol server for AI assistants, on stdio (or Streamable HTTP at
http://HOST:PORT/mcp with --http; a bare PORT or :PORT binds 127.0.0.1). It validates,
renders, explains and simulates policies given as YAML; with --kubeconfig it also lists and
reads the cluster's policies, and with --allow-writes it may drain backends and apply
policies, as that kubeconfig's user.`;

class UsageError extends Error {}

type Io = { stdout: (s: string) => void; stderr: (s: string) => void };
const processIo: Io = { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) };

export function main(argv: string[], io: Io = processIo): number {
  try {
    const [command, ...rest] = argv;
    switch (command) {
      case "render":
        return render(rest, io);
      case "validate":
        return validate(rest, io);
      case "bootstrap":
        return bootstrap(rest, io);
      case "crd":
        io.stdout(crdYaml());
        return 0;
      case "mcp":
        return mcp(rest, io);
      case "help":
      case "--help":
      case "-h":
        io.stdout(USAGE + "\n");
        return 0;
      default:
        throw new UsageError(command ? `unknown command "${command}"` : "a command is required");
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`fallbackctl: ${error.message}\n\n${USAGE}\n`);
      return 2;
    }
    if (error instanceof InputError) {
      io.stderr(`fallbackctl: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

function parse(
  args: string[],
  options: Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>,
) {
  try {
    return parseArgs({ args, options, allowPositionals: false, strict: true }).values as Record<string, any>;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function hostPort(flag: string, value: string | undefined, fallback: { address: string; port: number }) {
  if (value === undefined) return fallback;
  const parsed = parseHostPort(value);
  if (!parsed) throw new UsageError(`--${flag} must be HOST:PORT, got "${value}"`);
  return parsed;
}

function compileFiles(files: string[] | undefined, options: CompileOptions, io: Io) {
  if (!files?.length) throw new UsageError("at least one -f PATH is required");
  const { snapshot, problems } = snapshotFromObjects(readObjects(files));
  // Services, EndpointSlices and Secrets the compiler cannot read: said, left out, and invalid input.
  for (const problem of problems) io.stderr(problemLine(problem) + "\n");
  const output = compile(snapshot, options);
  let invalid = 0;
  for (const result of output.results) {
    for (const line of result.errors) io.stderr(line + "\n");
    if (result.errors.length) invalid++;
    // A valid policy can still be in conflict or point at Services not in the input.
    const notes = result.errors.length
      ? []
      : result.conditions.filter((c) => c.status === "False" && (c.type === "Accepted" || c.type === "ResolvedRefs"));
    for (const c of notes) io.stderr(`warning: FallbackPolicy ${result.key}: ${c.type}: ${c.message}\n`);
  }
  return { output, invalid, problems: problems.length };
}

function bootstrap(args: string[], io: Io): number {
  const flags = parse(args, {
    "xds-server": { type: "string", multiple: true },
    listen: { type: "string" },
    admin: { type: "string" },
    "node-id": { type: "string" },
    "node-cluster": { type: "string" },
    sotw: { type: "boolean" },
    "all-stats": { type: "boolean" },
    "stats-interval": { type: "string" },
    "xds-ca": { type: "string" },
    "xds-cert": { type: "string" },
    "xds-key": { type: "string" },
    "xds-server-name": { type: "string" },
  });
  const servers = (flags["xds-server"] as string[] | undefined)?.flatMap((v) => v.split(",")).filter(Boolean) ?? [];
  if (!servers.length) throw new UsageError("--xds-server HOST:PORT is required");
  const ca = flags["xds-ca"];
  const [cert, key] = [flags["xds-cert"], flags["xds-key"]];
  if (!ca && (cert || key || flags["xds-server-name"]))
    throw new UsageError("--xds-cert, --xds-key and --xds-server-name need --xds-ca");
  if (Boolean(cert) !== Boolean(key)) throw new UsageError("--xds-cert and --xds-key go together");
  const options: AdsBootstrapOptions = {
    xdsServers: servers.map((s) => hostPort("xds-server", s, defaultOptions.admin)),
    admin: hostPort("admin", flags.admin, defaultOptions.admin),
    nodeId: flags["node-id"] ?? "fallback-envoy",
    nodeCluster: flags["node-cluster"] ?? "fallback-envoy",
    ...(flags.sotw ? { sotw: true } : {}),
    ...(flags["all-stats"] ? { allStats: true } : {}),
    ...(flags["stats-interval"] ? { statsIntervalMs: statsInterval(flags["stats-interval"]) } : {}),
    ...(flags.listen ? { listen: hostPort("listen", flags.listen, defaultOptions.listen) } : {}),
    ...(ca
      ? {
          tls: {
            caFile: ca,
            ...(cert ? { certFile: cert, keyFile: key } : {}),
            ...(flags["xds-server-name"] ? { serverName: flags["xds-server-name"] } : {}),
          },
        }
      : {}),
  };
  io.stdout(toYaml(adsBootstrap(options)));
  return 0;
}

function statsInterval(value: string): number {
  const ms = /^\d+(\.\d+)?(ms|s|m)$/.test(value) ? toMs(value) : NaN;
  if (!(ms >= 1000 && ms <= 60_000))
    throw new UsageError(`--stats-interval ${value}: must be a duration from 1s to 1m, such as 5s`);
  return ms;
}

/**
 * Starts the MCP server and returns at once; it runs until its client goes. Loaded only
 * for this command: the MCP SDK and the Kubernetes client are no cost to the others.
 */
function mcp(args: string[], io: Io): number {
  const flags = parse(args, {
    kubeconfig: { type: "string" },
    "allow-writes": { type: "boolean" },
    http: { type: "string" },
  });
  if (flags["allow-writes"] && !flags.kubeconfig)
    throw new UsageError("--allow-writes needs --kubeconfig: the write tools change a cluster");
  let http: { address: string; port: number } | undefined;
  if (flags.http !== undefined) {
    // Loopback unless an address is given: the endpoint has no authentication of its own.
    const value = /^:?\d+$/.test(flags.http) ? `127.0.0.1:${flags.http.replace(/^:/, "")}` : flags.http;
    http = parseHostPort(value, { allowZero: true });
    if (!http) throw new UsageError(`--http must be HOST:PORT or PORT, got "${flags.http}"`);
  }
  const options = {
    ...(flags.kubeconfig ? { kubeconfig: flags.kubeconfig as string } : {}),
    allowWrites: Boolean(flags["allow-writes"]),
    ...(http ? { http } : {}),
  };
  import("../mcp/main.ts")
    .then(({ runMcp }) => runMcp(options, io))
    .catch((error: unknown) => {
      io.stderr(`fallbackctl mcp: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    });
  return 0;
}

function validate(args: string[], io: Io): number {
  const flags = parse(args, { filename: { type: "string", short: "f", multiple: true } });
  const { output, invalid, problems } = compileFiles(flags.filename, defaultOptions, io);
  io.stdout(
    `${output.results.length - invalid} valid, ${invalid} invalid FallbackPolicies${problems ? `; ${problems} problem(s) in other objects` : ""}\n`,
  );
  return invalid || problems ? 1 : 0;
}

function render(args: string[], io: Io): number {
  const flags = parse(args, {
    filename: { type: "string", short: "f", multiple: true },
    format: { type: "string" },
    output: { type: "string", short: "o" },
    listen: { type: "string" },
    admin: { type: "string" },
    "cluster-domain": { type: "string" },
    "config-dir": { type: "string" },
    "trusted-ca": { type: "string" },
  });
  const format = flags.format ?? "bootstrap";
  if (format !== "bootstrap" && format !== "xds")
    throw new UsageError(`--format must be bootstrap or xds, got "${format}"`);
  if (format === "xds" && !flags.output) throw new UsageError("--format xds writes several files: -o DIR is required");
  const options: CompileOptions = {
    clusterDomain: flags["cluster-domain"] ?? defaultOptions.clusterDomain,
    listen: hostPort("listen", flags.listen, defaultOptions.listen),
    admin: hostPort("admin", flags.admin, defaultOptions.admin),
    configDir: flags["config-dir"] ?? (flags.output ? resolve(flags.output) : defaultOptions.configDir),
    trustedCA: flags["trusted-ca"] ?? defaultOptions.trustedCA,
  };
  const { output, invalid, problems } = compileFiles(flags.filename, options, io);
  // Nothing is written for input with errors: a pipeline never ships half a config.
  if (invalid || problems) return 1;
  for (const r of output.results)
    if (r.credentialed) io.stderr(`warning: FallbackPolicy ${r.key}: ${credentialsNeedXds(r.credentialed)}\n`);

  const files =
    format === "xds"
      ? renderConfigFiles(output.resources, options).files
      : { "bootstrap.yaml": renderBootstrap(output.resources, options) };
  if (!flags.output) {
    io.stdout(files["bootstrap.yaml"]!);
    return 0;
  }
  mkdirSync(flags.output, { recursive: true });
  // Each file is replaced whole (write aside, then rename), so a running Envoy never reads half of one.
  for (const [name, text] of Object.entries(files)) {
    const path = join(flags.output, name);
    writeFileSync(`${path}.tmp`, text);
    renameSync(`${path}.tmp`, path);
  }
  io.stderr(`wrote ${Object.keys(files).join(", ")} to ${flags.output}\n`);
  return 0;
}
