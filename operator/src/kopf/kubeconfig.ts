// The framework's KubeConfig: which clusters, users and contexts there are, as plain data,
// with client-node's KubeConfig doing every load, merge and authentication step in a
// short-lived helper process (kubeconfig-helper.ts). README.md says why a process: a
// program that imports client-node's KubeConfig holds its generated API modules for good,
// and a worker thread's memory stays in the process after the worker ends.
//
// The class has the names of client-node's KubeConfig that programs use, with the same
// meaning, and no private members, so a client-node KubeConfig can stand wherever this
// one is asked for (tests build theirs with client-node directly).

import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export interface Cluster {
  readonly name: string;
  readonly caData?: string;
  caFile?: string;
  readonly server: string;
  readonly tlsServerName?: string;
  readonly skipTLSVerify: boolean;
  readonly proxyUrl?: string;
}

export interface User {
  readonly name: string;
  readonly certData?: string;
  certFile?: string;
  readonly exec?: unknown;
  readonly keyData?: string;
  keyFile?: string;
  readonly authProvider?: unknown;
  readonly token?: string;
  readonly username?: string;
  readonly password?: string;
  readonly impersonateUser?: string;
}

export interface Context {
  readonly cluster: string;
  readonly user: string;
  readonly name: string;
  readonly namespace?: string;
}

export interface ConfigOptions {
  onInvalidEntry: "throw" | "filter";
}

/** What a kubeconfig amounts to once loaded: the state of client-node's KubeConfig. */
export interface KubeConfigData {
  clusters: Cluster[];
  users: User[];
  contexts: Context[];
  currentContext: string;
}

/** How to reach the API server, as client-node works it out for the current context. */
export interface ConnectionSettings {
  server: string;
  /** PEM, base64-encoded. */
  ca?: string;
  cert?: string;
  key?: string;
  rejectUnauthorized?: boolean;
  servername?: string;
  /** Authorization, Impersonate-User. */
  headers: Record<string, string>;
  /** Basic authentication, "user:password". */
  auth?: string;
  /** The cluster's proxy-url: an HTTP or HTTPS proxy the connections are tunnelled through (CONNECT). */
  proxyUrl?: string;
}

export type LoadMethod = "loadFromFile" | "loadFromString" | "loadFromCluster" | "loadFromDefault";

export type HelperRequest =
  | { op: "load"; method: LoadMethod; args: unknown[]; base?: KubeConfigData }
  | { op: "merge"; base: KubeConfigData; other: KubeConfigData; preserveContext: boolean }
  | { op: "connect"; config: KubeConfigData };

export type HelperResponse = { ok: true; value: unknown } | { ok: false; error: { name: string; message: string } };

export class KubeConfig {
  clusters: Cluster[] = [];
  users: User[] = [];
  contexts: Context[] = [];
  currentContext = "";

  getContexts(): Context[] {
    return this.contexts;
  }

  getClusters(): Cluster[] {
    return this.clusters;
  }

  getUsers(): User[] {
    return this.users;
  }

  getCurrentContext(): string {
    return this.currentContext;
  }

  setCurrentContext(context: string): void {
    this.currentContext = context;
  }

  getContextObject(name: string): Context | null {
    return this.contexts.find((c) => c.name === name) ?? null;
  }

  getCluster(name: string): Cluster | null {
    return this.clusters.find((c) => c.name === name) ?? null;
  }

  getUser(name: string): User | null {
    return this.users.find((u) => u.name === name) ?? null;
  }

  getCurrentCluster(): Cluster | null {
    const context = this.getContextObject(this.currentContext);
    return context ? this.getCluster(context.cluster) : null;
  }

  getCurrentUser(): User | null {
    const context = this.getContextObject(this.currentContext);
    return context ? this.getUser(context.user) : null;
  }

  loadFromOptions(options: KubeConfigData): void {
    assign(this, options);
  }

  /** Relative paths in the file are resolved against its folder, as kubectl does. */
  loadFromFile(file: string, opts?: Partial<ConfigOptions>): void {
    load(this, "loadFromFile", [file, opts]);
  }

  loadFromString(config: string, opts?: Partial<ConfigOptions>): void {
    load(this, "loadFromString", [config, opts]);
  }

  /** The Pod's service account: KUBERNETES_SERVICE_HOST/PORT and the mounted token and CA. */
  loadFromCluster(pathPrefix?: string): void {
    load(this, "loadFromCluster", [pathPrefix]);
  }

  /** $KUBECONFIG, ~/.kube/config, the Pod's service account, else localhost:8080. */
  loadFromDefault(opts?: Partial<ConfigOptions>, contextFromStartingConfig?: boolean, platform?: string): void {
    load(this, "loadFromDefault", [opts, contextFromStartingConfig, platform]);
  }

  /** Adds the other config's clusters, users and contexts (a name defined twice is an error). */
  mergeConfig(config: KubeConfig, preserveContext = false): void {
    assign(
      this,
      runSync({ op: "merge", base: dataOf(this), other: dataOf(config), preserveContext }) as KubeConfigData,
    );
  }
}

/** The state of this or of a client-node KubeConfig. */
export function dataOf(kc: KubeConfig): KubeConfigData {
  return { clusters: kc.clusters, users: kc.users, contexts: kc.contexts, currentContext: kc.currentContext };
}

/** Asks client-node for the connection settings of the current context (runs exec plugins, reads token files). */
export async function connectionSettings(kc: KubeConfig): Promise<ConnectionSettings> {
  return (await run({ op: "connect", config: dataOf(kc) })) as ConnectionSettings;
}

function assign(kc: KubeConfig, data: KubeConfigData): void {
  kc.clusters = data.clusters ?? [];
  kc.users = data.users ?? [];
  kc.contexts = data.contexts ?? [];
  kc.currentContext = data.currentContext ?? "";
}

function load(kc: KubeConfig, method: LoadMethod, args: unknown[]): void {
  assign(kc, runSync({ op: "load", method, args, base: dataOf(kc) }) as KubeConfigData);
}

const HELPER = fileURLToPath(new URL("./kubeconfig-helper.ts", import.meta.url));
// No inherited NODE_OPTIONS: flags meant for the program (a profiler, heap sizes) are not
// meant for its helper.
const helperArgs = ["--disable-warning=ExperimentalWarning", HELPER];
const helperEnv = (): NodeJS.ProcessEnv => {
  const { NODE_OPTIONS: _, ...env } = process.env;
  return env;
};

// Synchronous, as client-node's loaders are: a program loads its kubeconfig before it
// does anything else, and expects a bad file to throw right there.
function runSync(request: HelperRequest): unknown {
  const result = spawnSync(process.execPath, helperArgs, {
    input: JSON.stringify(request),
    // stdin and stdout carry the request and the answer, never the program's own streams
    // (fallbackctl mcp speaks its protocol on them); exec plugins may write to stderr.
    stdio: ["pipe", "pipe", "inherit"],
    env: helperEnv(),
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) throw result.error;
  return answer(result.stdout, result.status);
}

function run(request: HelperRequest): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, helperArgs, { stdio: ["pipe", "pipe", "inherit"], env: helperEnv() });
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.once("error", reject);
    child.once("close", (status) => {
      try {
        resolve(answer(stdout, status));
      } catch (err) {
        reject(err);
      }
    });
    child.stdin.end(JSON.stringify(request));
  });
}

function answer(stdout: string, status: number | null): unknown {
  let response: HelperResponse;
  try {
    response = JSON.parse(stdout.trim().split("\n").at(-1) ?? "") as HelperResponse;
  } catch {
    throw new Error(`the kubeconfig helper ended (status ${status}) without an answer`);
  }
  if (!response.ok) throw new Error(response.error.message);
  return response.value;
}
