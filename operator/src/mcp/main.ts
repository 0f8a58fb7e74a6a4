// fallbackctl mcp: the Model Context Protocol server, on stdio (the default: an MCP client
// starts it as a child process) or on Streamable HTTP with --http. The command line is
// read by fallbackctl (cli/main.ts); this runs what it asked for.
import { readFileSync } from "node:fs";

export type McpOptions = {
  kubeconfig?: string;
  allowWrites: boolean;
  /** Streamable HTTP on this address; absent: stdio. */
  http?: { address: string; port: number };
};

type Io = { stderr: (s: string) => void };

/** Runs until the client goes (stdio) or a signal comes (HTTP). */
export async function runMcp(options: McpOptions, io: Io): Promise<void> {
  const [{ createServer, OFFLINE_TOOLS, CLUSTER_TOOLS, WRITE_TOOLS }, { connect }] = await Promise.all([
    import("./server.ts"),
    import("./cluster.ts"),
  ]);
  const log = (line: string) => io.stderr(`${line}\n`);
  const cluster = options.kubeconfig ? connect(options.kubeconfig) : undefined;
  const context = {
    ...(cluster ? { cluster } : {}),
    allowWrites: options.allowWrites && !!cluster,
    version: version(),
    log,
  };
  const factory = () => createServer(context);
  const tools = [...OFFLINE_TOOLS, ...(cluster ? CLUSTER_TOOLS : []), ...(context.allowWrites ? WRITE_TOOLS : [])];
  const where = cluster
    ? `; cluster ${cluster.server} (context ${cluster.context})${context.allowWrites ? ", writes allowed" : ", read-only"}`
    : "";

  if (!options.http) {
    const { serveStdio } = await import("@modelcontextprotocol/server/stdio");
    const handle = serveStdio(factory, { onerror: (error) => log(`fallbackctl mcp: ${error.message}`) });
    log(`fallbackctl mcp: serving on stdio; tools: ${tools.join(", ")}${where}`);
    const stop = () => void handle.close().finally(() => process.exit(0));
    // The client closing its end is the end of the session.
    process.stdin.once("end", stop);
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    return;
  }

  const { serveHttp, isLoopback } = await import("./http.ts");
  const serving = await serveHttp(factory, options.http, log);
  log(`fallbackctl mcp: serving Streamable HTTP on ${serving.url}; tools: ${tools.join(", ")}${where}`);
  if (!isLoopback(options.http.address)) {
    log(
      `fallbackctl mcp: warning: ${options.http.address} is not a loopback address, and the endpoint has no authentication: anyone who reaches it uses ${cluster ? "your kubeconfig" : "these tools"}${context.allowWrites ? ", writes included" : ""}.`,
    );
  }
  const stop = () => void serving.close().finally(() => process.exit(0));
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

function version(): string {
  try {
    return (
      (JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version?: string })
        .version ?? "0.0.0"
    );
  } catch {
    return "0.0.0";
  }
}
