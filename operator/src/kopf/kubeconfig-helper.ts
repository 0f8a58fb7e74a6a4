// The short-lived helper process that runs client-node's KubeConfig for the framework
// (kubeconfig.ts starts it; README.md says why a process of its own). It reads one request
// as JSON on stdin, answers one JSON line on stdout, and exits. This is the only module
// that imports @kubernetes/client-node (a lint rule holds that).
//
// Every kubeconfig rule is client-node's: loading and merging files, in-cluster config,
// relative paths, and authentication (tokens, token files, exec plugins, auth providers,
// client certificates, impersonation), through its public KubeConfig API.

import { KubeConfig } from "@kubernetes/client-node";
import type { HelperRequest, HelperResponse, KubeConfigData, ConnectionSettings } from "./kubeconfig.ts";

function snapshot(kc: KubeConfig): KubeConfigData {
  return { clusters: kc.clusters, users: kc.users, contexts: kc.contexts, currentContext: kc.currentContext };
}

function fromData(data: KubeConfigData | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (data) kc.loadFromOptions(structuredClone(data));
  return kc;
}

async function connect(kc: KubeConfig): Promise<ConnectionSettings> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error(`the current context "${kc.getCurrentContext()}" names no cluster`);
  if (cluster.proxyUrl) {
    const protocol = URL.canParse(cluster.proxyUrl) ? new URL(cluster.proxyUrl).protocol : undefined;
    if (protocol !== "http:" && protocol !== "https:")
      throw new Error(
        `cluster "${cluster.name}": proxy-url ${JSON.stringify(cluster.proxyUrl)}: only http:// and https:// proxies are supported`,
      );
  }
  const opts: {
    ca?: Buffer;
    cert?: Buffer;
    key?: Buffer;
    rejectUnauthorized?: boolean;
    servername?: string;
    headers?: Record<string, string>;
    auth?: string;
  } = {};
  await kc.applyToHTTPSOptions(opts);
  const pem = (b: Buffer | string | undefined) => (b === undefined ? undefined : Buffer.from(b).toString("base64"));
  return {
    server: cluster.server,
    ca: pem(opts.ca),
    cert: pem(opts.cert),
    key: pem(opts.key),
    rejectUnauthorized: opts.rejectUnauthorized,
    servername: opts.servername,
    headers: { ...opts.headers },
    auth: opts.auth,
    ...(cluster.proxyUrl ? { proxyUrl: cluster.proxyUrl } : {}),
  };
}

async function handle(req: HelperRequest): Promise<unknown> {
  switch (req.op) {
    case "load": {
      const kc = fromData(req.base);
      switch (req.method) {
        case "loadFromFile":
          kc.loadFromFile(req.args[0] as string, req.args[1] as object | undefined);
          break;
        case "loadFromString":
          kc.loadFromString(req.args[0] as string, req.args[1] as object | undefined);
          break;
        case "loadFromCluster":
          kc.loadFromCluster(req.args[0] as string | undefined);
          break;
        case "loadFromDefault":
          kc.loadFromDefault(
            req.args[0] as object | undefined,
            req.args[1] as boolean | undefined,
            req.args[2] as string | undefined,
          );
          break;
      }
      return snapshot(kc);
    }
    case "merge": {
      const kc = fromData(req.base);
      kc.mergeConfig(fromData(req.other), req.preserveContext);
      return snapshot(kc);
    }
    case "connect":
      return connect(fromData(req.config));
  }
}

const chunks: Buffer[] = [];
for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
let response: HelperResponse;
try {
  response = { ok: true, value: await handle(JSON.parse(Buffer.concat(chunks).toString("utf8")) as HelperRequest) };
} catch (err) {
  response = {
    ok: false,
    error: { name: (err as Error).name ?? "Error", message: (err as Error).message ?? String(err) },
  };
}
// Exit once answered: an auth provider may leave a timer or a socket behind.
process.stdout.write(`${JSON.stringify(response)}\n`, () => process.exit(0));
