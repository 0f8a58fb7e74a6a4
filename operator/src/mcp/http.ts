// Streamable HTTP on node:http: the SDK's web-standard handler (createMcpHandler) at /mcp,
// with Request and Response carried over to Node's own. On a loopback address the Host and
// Origin headers are checked first (DNS rebinding: a web page must not reach a local
// server through a name of its own).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { isIP } from "node:net";
import {
  createMcpHandler,
  hostHeaderValidationResponse,
  localhostAllowedHostnames,
  localhostAllowedOrigins,
  originValidationResponse,
  type McpServerFactory,
} from "@modelcontextprotocol/server";

export const MCP_PATH = "/mcp";
const MAX_BODY = 4 * 1024 * 1024;

export type HttpServing = { url: string; close(): Promise<void> };

export function isLoopback(address: string): boolean {
  return address === "localhost" || address === "::1" || (isIP(address) === 4 && address.startsWith("127."));
}

export async function serveHttp(
  factory: McpServerFactory,
  listen: { address: string; port: number },
  log: (line: string) => void,
): Promise<HttpServing> {
  const handler = createMcpHandler(factory, { onerror: (error) => log(`fallbackctl mcp: ${error.message}`) });
  const guard = isLoopback(listen.address);
  const server: Server = createServer((req, res) => {
    void handle(req, res).catch((error) => {
      log(`fallbackctl mcp: ${error instanceof Error ? error.message : String(error)}`);
      if (!res.headersSent)
        res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ error: "internal error" }));
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== MCP_PATH) {
      res.writeHead(404, { "content-type": "text/plain" }).end(`Not found: the MCP endpoint is ${MCP_PATH}\n`);
      return;
    }
    const body =
      req.method === "GET" || req.method === "HEAD" || req.method === "DELETE" ? undefined : await readBody(req);
    if (body === null) {
      res.writeHead(413, { "content-type": "text/plain" }).end(`Request body over ${MAX_BODY} bytes\n`);
      return;
    }
    const abort = new AbortController();
    res.once("close", () => abort.abort());
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (Array.isArray(value)) for (const v of value) headers.append(name, v);
      else if (value !== undefined) headers.set(name, value);
    }
    const request = new Request(`http://${req.headers.host ?? `${listen.address}:${listen.port}`}${req.url ?? "/"}`, {
      method: req.method ?? "GET",
      headers,
      ...(body ? { body: new Uint8Array(body) } : {}),
      signal: abort.signal,
    });
    const rejected = guard
      ? (hostHeaderValidationResponse(request, localhostAllowedHostnames()) ??
        originValidationResponse(request, localhostAllowedOrigins()))
      : undefined;
    const response = rejected ?? (await handler.fetch(request));
    res.writeHead(response.status, Object.fromEntries(response.headers.entries()));
    if (!response.body) return void res.end();
    // Streamed as it comes: a tool's answer may be an SSE stream.
    const reader = response.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (!res.write(value)) await new Promise((ok) => res.once("drain", ok));
      }
    } finally {
      res.end();
    }
  }

  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(listen.port, listen.address, () => ok());
  });
  const { port } = server.address() as { port: number };
  const host = listen.address.includes(":") ? `[${listen.address}]` : listen.address;
  return {
    url: `http://${host}:${port}${MCP_PATH}`,
    close: async () => {
      await handler.close();
      const closed = new Promise<void>((ok) => server.close(() => ok()));
      server.closeAllConnections();
      await closed;
    },
  };
}

/** The whole body, or null when it is over the limit. */
async function readBody(req: IncomingMessage): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) return null;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
