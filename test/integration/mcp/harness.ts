// `fallbackctl mcp` as an MCP client sees it: the real command started as a child process
// and reached with the SDK's own Client, over stdio (the client spawns it) or Streamable
// HTTP (started with --http 127.0.0.1:0; the URL is read from its log line).
import { spawn, type ChildProcess } from "node:child_process";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import { fallbackctlBin } from "../../support/paths.ts";

export type Session = {
  client: Client;
  transport: "stdio" | "http";
  /** What the server logged so far. */
  stderr(): string;
  /** The server's Streamable HTTP endpoint (HTTP sessions). */
  url?: string;
  close(): Promise<void>;
};

export type SessionOptions = {
  /** More flags after `fallbackctl mcp`, e.g. ["--kubeconfig", path, "--allow-writes"]. */
  args?: string[];
  /** The protocol revision: the 2025-era handshake (the SDK client's default), or the newest both speak. */
  negotiation?: "legacy" | "auto";
};

const command = (args: string[]) => [fallbackctlBin, "mcp", ...args];
const newClient = (negotiation: SessionOptions["negotiation"]) =>
  new Client(
    { name: "fallback-operator-tests", version: "1.0.0" },
    negotiation === "auto" ? { versionNegotiation: { mode: "auto" } } : {},
  );

export async function stdioSession(options: SessionOptions = {}): Promise<Session> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: command(options.args ?? []),
    env: { ...process.env } as Record<string, string>,
    stderr: "pipe",
  });
  let log = "";
  transport.stderr?.on("data", (chunk: Buffer) => (log += chunk.toString()));
  const client = newClient(options.negotiation);
  await client.connect(transport);
  return { client, transport: "stdio", stderr: () => log, close: () => client.close() };
}

export async function httpSession(options: SessionOptions = {}): Promise<Session> {
  const child: ChildProcess = spawn(process.execPath, command(["--http", "127.0.0.1:0", ...(options.args ?? [])]), {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const url = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`fallbackctl mcp --http did not start within 30 s: ${log}`)), 30_000);
    child.stderr!.setEncoding("utf8").on("data", (s: string) => {
      log += s;
      const match = /serving Streamable HTTP on (\S+);/.exec(log);
      if (match) {
        clearTimeout(timer);
        ok(match[1]!);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`fallbackctl mcp --http exited (${code}): ${log}`));
    });
  });
  const client = newClient(options.negotiation);
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  const exited = new Promise<void>((ok) => (child.exitCode !== null ? ok() : child.once("exit", () => ok())));
  return {
    client,
    transport: "http",
    url,
    stderr: () => log,
    close: async () => {
      await client.close();
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** A tool call's text and structuredContent, with isError. */
export async function call(
  session: Session,
  name: string,
  args: Record<string, unknown>,
): Promise<{ text: string; data: any; isError: boolean }> {
  const result = await session.client.callTool({ name, arguments: args });
  const content = (result.content ?? []) as { type: string; text?: string }[];
  return {
    text: content
      .filter((c) => c.type === "text")
      .map((c) => c.text)
      .join("\n"),
    data: result.structuredContent,
    isError: result.isError === true,
  };
}

export const OFFLINE = ["explain_policy", "render_policies", "simulate_failure", "validate_policies"];
export const CLUSTER = ["get_policy", "list_policies"];
export const WRITES = ["apply_policy", "set_drain"];
