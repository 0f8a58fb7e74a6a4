// A local stand-in for a hosted AI provider's OpenAI-compatible API, over TLS: it accepts
// only its own key (in the header it names), answers chat completions (streamed as SSE when
// asked), and records what it received, so a test can see what Envoy sent it.
import { createServer, type Server } from "node:https";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";

export type Received = { path: string; headers: Record<string, string | string[] | undefined>; body: string };

export type Provider = {
  readonly name: string;
  readonly port: number;
  readonly received: Received[];
  /** The keys accepted from now on. */
  acceptKeys(keys: string[]): void;
  /** Answer every request with this status (e.g. 503) and these headers, or normally (undefined). */
  failWith(status: number | undefined, headers?: Record<string, string>): void;
  close(): Promise<void>;
};

export type ProviderOptions = {
  name: string;
  /** Header the key arrives in, and the text before it ("Bearer " for Authorization). */
  header: string;
  prefix: string;
  keys: string[];
  /** The path chat completions are served at, e.g. /v1/chat/completions. */
  path: string;
  tls: { keyFile: string; certFile: string };
  /** Pause between streamed chunks. */
  chunkDelayMs?: number;
  /** More chunks (".") after the answer's words. */
  extraChunks?: number;
};

export async function startProvider(options: ProviderOptions): Promise<Provider> {
  const received: Received[] = [];
  let keys = new Set(options.keys);
  let failure: { status: number; headers: Record<string, string> } | undefined;
  const server: Server = createServer(
    { key: readFileSync(options.tls.keyFile), cert: readFileSync(options.tls.certFile) },
    (req, res) => {
      let body = "";
      req.on("data", (chunk) => (body += chunk));
      req.on("end", () => {
        received.push({ path: req.url ?? "", headers: { ...req.headers }, body });
        const json = (status: number, value: object, headers: Record<string, string> = {}) =>
          res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(value));
        if (failure) return json(failure.status, { error: { message: `${options.name} is failing` } }, failure.headers);
        const sent = req.headers[options.header.toLowerCase()];
        if (
          typeof sent !== "string" ||
          !sent.startsWith(options.prefix) ||
          !keys.has(sent.slice(options.prefix.length))
        ) {
          return json(401, { error: { message: `${options.name}: wrong or missing key` } });
        }
        if (req.url !== options.path)
          return json(404, { error: { message: `${options.name}: no such path ${req.url}` } });
        let request: { model?: string; stream?: boolean };
        try {
          request = JSON.parse(body || "{}");
        } catch {
          return json(400, { error: { message: `${options.name}: the body is not JSON` } });
        }
        const content = `answer from ${options.name}`;
        if (!request.stream) {
          return json(200, {
            id: "chatcmpl-1",
            object: "chat.completion",
            created: 1,
            model: request.model ?? "",
            choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
          });
        }
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        // Long enough to outlast the policy's per-try timeout, at the given pace.
        const words = [...content.split(" "), ...Array.from({ length: options.extraChunks ?? 0 }, () => ".")];
        let i = 0;
        const next = () => {
          if (i < words.length) {
            const chunk = {
              id: "chatcmpl-1",
              object: "chat.completion.chunk",
              created: 1,
              model: request.model ?? "",
              choices: [{ index: 0, delta: { content: (i ? " " : "") + words[i] }, finish_reason: null }],
            };
            res.write(`data: ${JSON.stringify(chunk)}\n\n`);
            i++;
            setTimeout(next, options.chunkDelayMs ?? 300);
          } else {
            res.end("data: [DONE]\n\n");
          }
        };
        next();
      });
    },
  );
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  return {
    name: options.name,
    port: (server.address() as AddressInfo).port,
    received,
    acceptKeys: (next) => void (keys = new Set(next)),
    failWith: (status, headers = {}) => void (failure = status === undefined ? undefined : { status, headers }),
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
