// What the benchmarks that run the real operator share: a keep-alive HTTPS client of the
// API server, a watch of the policies that can wait for their states, and the numbers.
import { readFileSync } from "node:fs";
import { Agent, request, type RequestOptions } from "node:https";
import { parse } from "yaml";
import { sleep } from "../test/support/poll.ts";

export const PLURAL_PATH = "/apis/fallback.dev/v1alpha1/namespaces";

export type Kube = {
  call: (method: string, path: string, body?: unknown, contentType?: string) => Promise<any>;
  watch: (
    path: string,
    onEvent: (event: { type: string; object: any }) => void,
    onEnd: (why: string) => void,
  ) => { close: () => void };
  close: () => void;
};

/** A keep-alive HTTPS client with the kubeconfig's admin client certificate. */
export function kubeClient(kubeconfigPath: string): Kube {
  const config = parse(readFileSync(kubeconfigPath, "utf8"));
  const cluster = config.clusters[0].cluster;
  const user = config.users[0].user;
  const url = new URL(cluster.server);
  const b64 = (v: string) => Buffer.from(v, "base64");
  const agent = new Agent({
    keepAlive: true,
    maxSockets: 64,
    ca: b64(cluster["certificate-authority-data"]),
    cert: b64(user["client-certificate-data"]),
    key: b64(user["client-key-data"]),
  });
  const base: RequestOptions = { host: url.hostname, port: url.port, agent, servername: "localhost" };
  const call = (method: string, path: string, body?: unknown, contentType = "application/json") =>
    new Promise<any>((done, fail) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        {
          ...base,
          method,
          path,
          headers: { accept: "application/json", ...(payload ? { "content-type": contentType } : {}) },
        },
        (res) => {
          let text = "";
          res.setEncoding("utf8").on("data", (s: string) => (text += s));
          res.once("end", () => {
            if ((res.statusCode ?? 0) >= 300)
              fail(new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 300)}`));
            else done(text ? JSON.parse(text) : undefined);
          });
          res.once("error", fail);
        },
      );
      req.once("error", fail);
      req.end(payload);
    });
  const watch = (
    path: string,
    onEvent: (event: { type: string; object: any }) => void,
    onEnd: (why: string) => void,
  ) => {
    let ended = false;
    const end = (why: string) => {
      if (!ended) ((ended = true), onEnd(why));
    };
    // A connection of its own, so a long stream never holds up a keep-alive socket.
    const req = request(
      {
        ...base,
        agent: new Agent({ ca: agent.options.ca, cert: agent.options.cert, key: agent.options.key }),
        method: "GET",
        path,
      },
      (res) => {
        let buffer = "";
        res.setEncoding("utf8").on("data", (s: string) => {
          buffer += s;
          let nl: number;
          while ((nl = buffer.indexOf("\n")) >= 0) {
            const line = buffer.slice(0, nl);
            buffer = buffer.slice(nl + 1);
            if (line.trim()) onEvent(JSON.parse(line));
          }
        });
        res.once("end", () => end(`ended (HTTP ${res.statusCode})`));
        res.once("error", (err) => end(String(err)));
      },
    );
    req.on("error", (err) => end(String(err)));
    req.end();
    return {
      close: () => {
        ended = true;
        req.destroy();
      },
    };
  };
  return { call, watch, close: () => agent.destroy() };
}

/** Runs `tasks` with at most `limit` at once. */
export async function limited<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** Nearest-rank percentile. */
export const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
};
export const ms = (v: number) =>
  Number.isNaN(v)
    ? "–"
    : v >= 10_000
      ? `${(v / 1000).toFixed(1)} s`
      : v >= 1000
        ? `${(v / 1000).toFixed(2)} s`
        : `${Math.round(v)} ms`;
export const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
export const num = (n: number) => n.toLocaleString("en-US");

/** The policies' latest state, from one watch, and waiting for a state of one of them. */
export class PolicyWatch {
  readonly latest = new Map<string, any>();
  private readonly waiters = new Set<{ names: Set<string>; pred: (p: any) => boolean; done: () => void }>();
  private handle: { close: () => void } | undefined;
  private closed = false;
  /** Times the watch ended and was resumed from a fresh list. */
  resumed = 0;

  private readonly kube: Kube;
  private readonly ns: string;

  constructor(kube: Kube, ns: string) {
    this.kube = kube;
    this.ns = ns;
  }

  /** Lists the policies, then watches from there; an ended watch starts over. */
  async start(): Promise<void> {
    let list;
    for (let attempt = 1; ; attempt++) {
      try {
        list = await this.kube.call("GET", `${PLURAL_PATH}/${this.ns}/fallbackpolicies`);
        break;
      } catch (err) {
        // Right after the CRD is Established its storage may still be initializing (429).
        if (attempt >= 50 || !/: 429 /.test(String(err))) throw err;
        await sleep(200);
      }
    }
    for (const p of list.items) this.seen(p);
    this.handle = this.kube.watch(
      `${PLURAL_PATH}/${this.ns}/fallbackpolicies?watch=1&allowWatchBookmarks=true&resourceVersion=${list.metadata.resourceVersion}`,
      (event) => {
        if (event.type === "ADDED" || event.type === "MODIFIED") this.seen(event.object);
      },
      // The API server ends watches now and then (its timeout, or a watcher it finds too
      // slow): whatever happened meanwhile comes with the next list.
      () => this.resume(),
    );
  }

  private resume(): void {
    if (this.closed) return;
    this.resumed++;
    this.start().catch(() => setTimeout(() => this.resume(), 500));
  }

  private seen(p: any): void {
    this.latest.set(p.metadata.name, p);
    for (const w of this.waiters) {
      if (w.names.has(p.metadata.name) && w.pred(p)) {
        w.names.delete(p.metadata.name);
        if (w.names.size === 0) {
          this.waiters.delete(w);
          w.done();
        }
      }
    }
  }

  /** Resolves when every one of `names` satisfied `pred` (now or in a later event). */
  until(names: string[], pred: (p: any) => boolean, timeoutMs: number): Promise<void> {
    const pending = new Set(names.filter((n) => !(this.latest.has(n) && pred(this.latest.get(n)))));
    if (pending.size === 0) return Promise.resolve();
    return new Promise((done, fail) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        fail(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${pending.size} of ${names.length} policies (e.g. ${[...pending][0]})`,
          ),
        );
      }, timeoutMs);
      const waiter = { names: pending, pred, done: () => (clearTimeout(timer), done()) };
      this.waiters.add(waiter);
    });
  }

  close(): void {
    this.closed = true;
    this.handle?.close();
  }
}

export const readyOf = (p: any) => (p?.status?.conditions ?? []).find((c: any) => c.type === "Ready");
/** Its status is for the generation it has; with `ready`, Ready is True as well. */
export const reconciled = (ready: boolean, generation?: number) => (p: any) => {
  const g = p.metadata.generation;
  const r = readyOf(p);
  return (
    (generation === undefined || g >= generation) &&
    p.status?.observedGeneration === g &&
    r?.observedGeneration === g &&
    (!ready || r.status === "True")
  );
};

/** VmRSS, VmHWM (peak), and the RSS split into anonymous memory and mapped files (the node binary), bytes. */
export function procStatus(pid: number): { rss: number; hwm: number; anon: number; file: number } {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM"), anon: kb("RssAnon"), file: kb("RssFile") };
}

/**
 * The resident memory by kind of mapping, bytes, from /proc/PID/smaps: V8's heap pages (its
 * anonymous 256 KiB mappings), glibc's main heap (`[heap]`), other anonymous memory
 * (malloc's other arenas and large blocks, V8's large objects, stacks) and mapped files.
 */
export function procMappings(pid: number): { v8Pages: number; mallocHeap: number; otherAnon: number; files: number } {
  const sums = { v8Pages: 0, mallocHeap: 0, otherAnon: 0, files: 0 };
  let kind: keyof typeof sums = "otherAnon";
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const path = head[3]!;
      const size = parseInt(head[2]!, 16) - parseInt(head[1]!, 16);
      kind = path.startsWith("/")
        ? "files"
        : path === "[heap]"
          ? "mallocHeap"
          : !path && size === 256 * 1024
            ? "v8Pages"
            : "otherAnon";
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) sums[kind] += Number(rss[1]) * 1024;
  }
  return sums;
}
