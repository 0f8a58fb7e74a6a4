// HTTP to the API server on node:http/node:https, over one keep-alive agent: every request,
// Event, Lease renewal and watch of a KubeClient shares its connections.
//
// The connection settings (server, TLS material, Authorization) come from client-node in a
// helper process (kubeconfig.ts) and go stale: in-cluster token files rotate, exec plugins'
// credentials expire. So they are asked for again after a while (in the background, the
// old ones serve meanwhile), and at once when the server answers 401, after which that
// request is sent once more.

import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { HttpProxyAgent, HttpsProxyAgent } from "hpagent";
import { connectionSettings, type ConnectionSettings, type KubeConfig } from "./kubeconfig.ts";

/** Ask again for settings this old, in the background. */
const REFRESH_AFTER_MS = 5 * 60_000;
/** After a 401, settings younger than this are not asked for again: the 401 stands. */
const MIN_REFRESH_GAP_MS = 5_000;
/** After a background attempt failed, wait this long before the next. */
const RETRY_REFRESH_MS = 30_000;

interface Connection {
  settings: ConnectionSettings;
  base: URL;
  agent: HttpAgent;
  /** What the agent's sockets were made with: the settings that need a new agent. */
  tlsKey: string;
  at: number;
}

export interface Exchange {
  method: string;
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: string;
  contentType?: string;
  accept?: string;
  signal?: AbortSignal;
}

export interface BufferedResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

export class Transport {
  private readonly kubeConfig: KubeConfig;
  private readonly agentGraceMs: number;
  private current: Connection | undefined;
  private pending: Promise<Connection> | undefined;
  private attemptedAt = 0;

  constructor(kubeConfig: KubeConfig, options: { agentGraceMs: number }) {
    this.kubeConfig = kubeConfig;
    this.agentGraceMs = options.agentGraceMs;
  }

  /** Sends a request and reads the whole answer. */
  async request(exchange: Exchange): Promise<BufferedResponse> {
    const res = await this.open(exchange);
    return { status: res.statusCode ?? 0, headers: res.headers, text: await readAll(res, exchange.signal) };
  }

  /** Sends a request and hands back the answer as it streams in (a watch). */
  async open(exchange: Exchange): Promise<IncomingMessage> {
    const conn = await this.connection();
    const res = await send(conn, exchange);
    if (res.statusCode !== 401) return res;
    const fresh = await this.refresh(conn).catch(() => conn);
    if (fresh === conn) return res;
    res.resume();
    return send(fresh, exchange);
  }

  private async connection(): Promise<Connection> {
    const conn = this.current;
    if (!conn) return this.refresh(undefined);
    // The old settings serve meanwhile; a failed attempt is not repeated at once.
    if (Date.now() - conn.at > REFRESH_AFTER_MS && Date.now() - this.attemptedAt > RETRY_REFRESH_MS)
      this.refresh(conn).catch(() => {});
    return conn;
  }

  /** New settings, unless `stale` is no longer current or is too young to be replaced. */
  private refresh(stale: Connection | undefined): Promise<Connection> {
    if (this.pending) return this.pending;
    const current = this.current;
    if (current && (current !== stale || Date.now() - current.at < MIN_REFRESH_GAP_MS)) return Promise.resolve(current);
    this.attemptedAt = Date.now();
    this.pending = connectionSettings(this.kubeConfig)
      .then((settings) => this.install(settings))
      .finally(() => (this.pending = undefined));
    return this.pending;
  }

  private install(settings: ConnectionSettings): Connection {
    const base = new URL(settings.server);
    const tlsKey = JSON.stringify([
      base.protocol,
      settings.ca,
      settings.cert,
      settings.key,
      settings.rejectUnauthorized,
      settings.servername,
      settings.proxyUrl,
    ]);
    const previous = this.current;
    let agent = previous?.agent;
    if (!previous || previous.tlsKey !== tlsKey) {
      agent = makeAgent(base.protocol, settings);
      // Requests under way on the old agent may finish; then its sockets go.
      if (previous) setTimeout(() => previous.agent.destroy(), this.agentGraceMs).unref();
    }
    this.current = { settings, base, agent: agent!, tlsKey, at: Date.now() };
    return this.current;
  }
}

/**
 * The keep-alive agent for the server's protocol; with a proxy-url, one that opens each
 * connection as a CONNECT tunnel through the proxy (hpagent, which client-node uses too),
 * with TLS to the API server inside it as without.
 */
function makeAgent(protocol: string, s: ConnectionSettings): HttpAgent {
  if (protocol === "http:")
    return s.proxyUrl ? new HttpProxyAgent({ keepAlive: true, proxy: s.proxyUrl }) : new HttpAgent({ keepAlive: true });
  const pem = (b64: string | undefined) => (b64 === undefined ? undefined : Buffer.from(b64, "base64"));
  const tls = {
    keepAlive: true,
    ...(s.ca !== undefined ? { ca: pem(s.ca) } : {}),
    ...(s.cert !== undefined ? { cert: pem(s.cert) } : {}),
    ...(s.key !== undefined ? { key: pem(s.key) } : {}),
    ...(s.rejectUnauthorized !== undefined ? { rejectUnauthorized: s.rejectUnauthorized } : {}),
    ...(s.servername !== undefined ? { servername: s.servername } : {}),
  };
  return s.proxyUrl ? new HttpsProxyAgent({ ...tls, proxy: s.proxyUrl }) : new HttpsAgent(tls);
}

function send(conn: Connection, x: Exchange): Promise<IncomingMessage> {
  const url = new URL(conn.base);
  // A server URL may carry a path (an API server behind a proxy): requests go below it.
  url.pathname = conn.base.pathname.replace(/\/$/, "") + x.path;
  for (const [key, value] of Object.entries(x.query ?? {})) {
    if (value !== undefined) url.searchParams.set(key, String(value));
  }
  const headers: Record<string, string> = { ...conn.settings.headers, Accept: x.accept ?? "application/json" };
  if (x.contentType) headers["Content-Type"] = x.contentType;
  const request = url.protocol === "http:" ? httpRequest : httpsRequest;
  return new Promise<IncomingMessage>((resolve, reject) => {
    let response: IncomingMessage | undefined;
    const req = request(
      url,
      {
        method: x.method,
        agent: conn.agent,
        headers,
        ...(conn.settings.auth ? { auth: conn.settings.auth } : {}),
      },
      (res) => {
        // Ending a request fails its answer too, perhaps after its reader stopped
        // listening (a watch ended on purpose): that must not crash the process.
        res.on("error", () => {});
        response = res;
        resolve(res);
      },
    );
    req.on("error", (err) => reject(failure(err, x)));
    // The signal ends a request only until its answer is complete (http.request's own
    // `signal` option would also destroy the kept-alive socket of a finished one).
    const signal = x.signal;
    if (signal) {
      const abort = () => {
        if (!response?.complete) req.destroy(signal.reason as Error);
      };
      if (signal.aborted) abort();
      signal.addEventListener("abort", abort, { once: true });
      req.once("close", () => signal.removeEventListener("abort", abort));
    }
    req.end(x.body);
  });
}

/** The whole body as text; fails as the request would if the signal fires meanwhile. */
function readAll(res: IncomingMessage, signal: AbortSignal | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => (text += chunk));
    res.once("end", () => resolve(text));
    res.on("error", (err) => reject(signal?.aborted ? signal.reason : err));
    res.once("close", () => {
      if (!res.complete)
        reject(signal?.aborted ? signal.reason : new Error("the API server closed the connection mid-answer"));
    });
  });
}

/**
 * A failed request, as callers read it: the signal's reason when it fired (a TimeoutError
 * for a request that took too long), else the network error as `cause`.
 */
export function failure(err: unknown, x: Pick<Exchange, "method" | "path" | "signal">): unknown {
  if (x.signal?.aborted) return x.signal.reason;
  return new Error(`${x.method} ${x.path}: ${(err as Error).message}`, { cause: err });
}
