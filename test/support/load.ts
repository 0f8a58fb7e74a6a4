// An open-loop load generator: sends requests at a steady rate whatever the answers do
// (a slow answer does not slow the sender down), over keep-alive connections, and records
// for each request its status, which backend answered, the latency and any connection error.
//
//   const load = startLoad({ url: "http://127.0.0.1:10000/", host: "products.shop:8080", rate: 200 });
//   ... break things ...
//   const results = await load.stop();
//   summarize(results)  // { total, ok, errors, byBackend, p99, ... }
import { Agent, request } from "node:http";

export type Result = {
  /** Sequence number, in sending order. */
  seq: number;
  /** When the request was sent, ms since the load started. */
  sentAt: number;
  /** ms from sending to the end of the response body (or to the error). */
  latencyMs: number;
  /** HTTP status, or 0 on a connection error or timeout. */
  status: number;
  /** `backend` of the JSON answer, when the answer is one of ours. */
  backend?: string;
  /** Host header the backend received. */
  backendHost?: string;
  /** TLS server name the backend received (HTTPS backends). */
  backendSni?: string | false | null;
  /** The body, when it is not a backend's JSON answer (kept to 2 KiB). */
  body?: string;
  headers?: Record<string, string | string[] | undefined>;
  /** Connection error or timeout. */
  error?: string;
};

export type LoadOptions = {
  /** Envoy's listener, e.g. http://127.0.0.1:10000/ */
  url: string;
  /** Host header (the policy's domain), e.g. products.shop:8080 */
  host: string;
  /** Requests per second; default 200. */
  rate?: number;
  /** Stop by itself after this long (ms); default 120 s, so a forgotten load cannot run on. */
  maxDurationMs?: number;
  /** A request not answered by then is an error; default 20 s. */
  timeoutMs?: number;
  /** Called with each result as it comes. */
  onResult?: (r: Result) => void;
};

export type Load = {
  /** Results so far (in completion order). */
  readonly results: Result[];
  /** ms since the load started. */
  now(): number;
  /** Waits until `predicate` holds for a result sent after `sinceMs` (defaults to now); returns it. */
  waitFor(
    what: string,
    predicate: (r: Result) => boolean,
    options?: { sinceMs?: number; timeoutMs?: number },
  ): Promise<Result>;
  /** Stops sending, waits for requests in flight, returns every result in sending order. */
  stop(): Promise<Result[]>;
};

/** One request outside of any load. */
export function send(
  url: string,
  host: string,
  agent?: Agent,
  timeoutMs = 20_000,
): Promise<Omit<Result, "seq" | "sentAt">> {
  const started = performance.now();
  return new Promise((ok) => {
    const req = request(url, { method: "GET", headers: { host }, agent, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", (e) =>
        ok({ latencyMs: performance.now() - started, status: 0, error: `response: ${e.message}` }),
      );
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        const result: Omit<Result, "seq" | "sentAt"> = {
          latencyMs: performance.now() - started,
          status: res.statusCode ?? 0,
          headers: res.headers,
        };
        try {
          const json = JSON.parse(text);
          if (json && typeof json.backend === "string") {
            result.backend = json.backend;
            result.backendHost = json.host;
            if ("sni" in json) result.backendSni = json.sni;
          } else result.body = text.slice(0, 2048);
        } catch {
          result.body = text.slice(0, 2048);
        }
        ok(result);
      });
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs}ms`)));
    req.on("error", (e: NodeJS.ErrnoException) =>
      ok({ latencyMs: performance.now() - started, status: 0, error: e.code ?? e.message }),
    );
    req.end();
  });
}

export function startLoad(options: LoadOptions): Load {
  const rate = options.rate ?? 200;
  const maxDuration = options.maxDurationMs ?? 120_000;
  const agent = new Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 256 });
  const results: Result[] = [];
  const inFlight = new Set<Promise<void>>();
  const waiters = new Set<{ check: (r: Result) => boolean }>();
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  let sent = 0;

  const fire = () => {
    const seq = sent++;
    const sentAt = now();
    const p = send(options.url, options.host, agent, options.timeoutMs ?? 20_000).then((r) => {
      const result: Result = { seq, sentAt, ...r };
      results.push(result);
      options.onResult?.(result);
      for (const w of waiters) if (w.check(result)) waiters.delete(w);
    });
    inFlight.add(p);
    p.finally(() => inFlight.delete(p));
  };

  // Catch up to rate*elapsed on every tick: timers on a busy machine are late, the rate is not.
  const timer = setInterval(
    () => {
      const elapsed = now();
      if (elapsed >= maxDuration) {
        clearInterval(timer);
        return;
      }
      const due = Math.floor((elapsed / 1000) * rate) + 1;
      // Never burst more than 100 ms worth after a long stall.
      const burst = Math.min(due - sent, Math.max(1, rate / 10));
      for (let i = 0; i < burst; i++) fire();
    },
    Math.max(1, Math.floor(1000 / rate / 2)),
  );

  return {
    results,
    now,
    waitFor(what, predicate, { sinceMs, timeoutMs = 30_000 } = {}) {
      const since = sinceMs ?? now();
      return new Promise((ok, fail) => {
        const existing = results.find((r) => r.sentAt >= since && predicate(r));
        if (existing) return ok(existing);
        const timeout = setTimeout(() => {
          waiters.delete(waiter);
          fail(
            new Error(
              `timed out after ${timeoutMs}ms waiting for ${what}; last results: ${JSON.stringify(results.slice(-3))}`,
            ),
          );
        }, timeoutMs);
        const waiter = {
          check: (r: Result) => {
            if (r.sentAt >= since && predicate(r)) {
              clearTimeout(timeout);
              ok(r);
              return true;
            }
            return false;
          },
        };
        waiters.add(waiter);
      });
    },
    async stop() {
      clearInterval(timer);
      while (inFlight.size) await Promise.allSettled([...inFlight]);
      agent.destroy();
      return [...results].sort((a, b) => a.seq - b.seq);
    },
  };
}

export type Summary = {
  total: number;
  /** 2xx answers. */
  ok: number;
  /** Anything else: non-2xx answers and connection errors. */
  errors: number;
  byStatus: Record<string, number>;
  byBackend: Record<string, number>;
  p50: number;
  p99: number;
  max: number;
  /** A few of the errors, for messages. */
  sampleErrors: Result[];
};

export function percentile(values: number[], p: number): number {
  if (!values.length) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** `isOk` decides what counts as a good answer; default: any 2xx. */
export function summarize(
  results: Result[],
  isOk: (r: Result) => boolean = (r) => r.status >= 200 && r.status < 300,
): Summary {
  const byStatus: Record<string, number> = {};
  const byBackend: Record<string, number> = {};
  const bad: Result[] = [];
  for (const r of results) {
    const status = r.error ? `error:${r.error}` : String(r.status);
    byStatus[status] = (byStatus[status] ?? 0) + 1;
    const backend = r.backend ?? (r.error ? "(error)" : "(envoy)");
    byBackend[backend] = (byBackend[backend] ?? 0) + 1;
    if (!isOk(r)) bad.push(r);
  }
  const latencies = results.map((r) => r.latencyMs);
  return {
    total: results.length,
    ok: results.length - bad.length,
    errors: bad.length,
    byStatus,
    byBackend,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies.length ? Math.max(...latencies) : 0,
    sampleErrors: bad.slice(0, 5),
  };
}

/** Results sent within [fromMs, toMs). */
export const between = (results: Result[], fromMs: number, toMs = Infinity) =>
  results.filter((r) => r.sentAt >= fromMs && r.sentAt < toMs);
