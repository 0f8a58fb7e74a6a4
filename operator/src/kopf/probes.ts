// The operator's HTTP endpoint: /metrics for Prometheus, /healthz for the liveness probe
// and /readyz for the readiness probe. Plain node:http; three routes need no framework.

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";

export interface Check {
  ok: boolean;
  /** Why not, one line each; shown in the response body. */
  reasons?: string[];
}

export interface ProbeServerOptions {
  /** 0 picks a free port (see `port` after start()). */
  port: number;
  host?: string;
  metrics: Pick<Metrics, "exposition" | "contentType">;
  healthz: () => Check;
  readyz: () => Check;
  logger: Logger;
}

export class ProbeServer {
  private readonly options: ProbeServerOptions;
  private server: Server | undefined;

  constructor(options: ProbeServerOptions) {
    this.options = options;
  }

  /** The port listened on, once started. */
  get port(): number | undefined {
    return (this.server?.address() as AddressInfo | null)?.port;
  }

  async start(): Promise<number> {
    const server = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      const answer = (status: number, body: string, type = "text/plain; charset=utf-8") => {
        res.writeHead(status, { "Content-Type": type }).end(body);
      };
      const probe = (check: Check) =>
        check.ok
          ? answer(200, "ok\n")
          : answer(503, `not ok\n${(check.reasons ?? []).map((r) => `- ${r}\n`).join("")}`);
      try {
        if (req.method !== "GET" && req.method !== "HEAD") return answer(405, "method not allowed\n");
        if (path === "/healthz" || path === "/livez") return probe(this.options.healthz());
        if (path === "/readyz") return probe(this.options.readyz());
        if (path === "/metrics") {
          const { metrics } = this.options;
          metrics.exposition().then(
            (text) => answer(200, text, metrics.contentType),
            (err: unknown) => answer(500, `${String(err)}\n`),
          );
          return;
        }
        answer(404, "not found\n");
      } catch (err) {
        answer(500, `${String(err)}\n`);
      }
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.port, this.options.host ?? "0.0.0.0", () => resolve());
    });
    this.options.logger.info({ port: this.port }, "serving /metrics, /healthz, /readyz");
    return this.port as number;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections(); // do not wait for scrapers' keep-alive sockets
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
