// Test backends: small HTTP (or HTTPS) servers that answer with their name, echo what they
// were sent (Host header, TLS server name), and can be told to misbehave: answer a status
// such as 503 or 429, hang, or answer late. A backend runs either in this process, or as
// a child process that a test can SIGKILL for a real crash (connections reset, then
// refused) and start again on the same address.
//
//   const b = await startBackend({ name: "primary", host: "127.0.0.2" });
//   b.setMode({ kind: "status", status: 503 });
//   const c = await spawnBackend({ name: "primary", host: "127.0.0.2" });
//   await c.kill();      // SIGKILL
//   await c.restart();   // same host and port
//   const h = await startBackend({ name: "primary", healthz: 503 });  // serves, but fails its health check
//   await h.setHealthz(200);
import { fork, type ChildProcess } from "node:child_process";
import { constants as cryptoConstants } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { freePort } from "./ports.ts";

/** How a backend answers. */
export type Mode =
  | { kind: "ok" }
  /** Answer this status (503, 429, ...) with the usual JSON body, and these headers (e.g. retry-after). */
  | { kind: "status"; status: number; headers?: Record<string, string> }
  /** Accept the request and never answer. */
  | { kind: "hang" }
  /** Answer normally, but only after `ms`. */
  | { kind: "delay"; ms: number };

export type BackendOptions = {
  name: string;
  /** 127.0.0.x; default 127.0.0.1. */
  host?: string;
  /** Default: a free port. */
  port?: number;
  mode?: Mode;
  /** Serve HTTPS with this key and certificate (PEM files). */
  tls?: { keyFile: string; certFile: string };
  /**
   * Answer GET /healthz with this status, whatever the mode, and leave it out of hits():
   * a health checker's requests are not traffic. Unset: /healthz is a request like any other.
   */
  healthz?: number;
};

/** What a backend answers: its name and what it received. */
export type BackendReply = {
  backend: string;
  host: string | undefined;
  /** TLS server name (SNI) the client sent, for HTTPS backends. */
  sni?: string | false | null;
  method: string | undefined;
  path: string | undefined;
  status: number;
};

export type Backend = {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** host:port */
  readonly address: string;
  setMode(mode: Mode): Promise<void>;
  /** The status GET /healthz answers from now on (see BackendOptions.healthz). */
  setHealthz(status: number): Promise<void>;
  /** Requests received since start (in-process backends count all; child ones since last (re)start). */
  hits(): Promise<number>;
  close(): Promise<void>;
};

export type ChildBackend = Backend & {
  readonly pid: number | undefined;
  /** SIGKILL the process and wait until it is gone: a crash, not a shutdown. */
  kill(): Promise<void>;
  /** Start the process again on the same address, with the mode it had last. */
  restart(): Promise<void>;
  readonly alive: boolean;
};

type Running = {
  server: Server;
  port: number;
  setMode(mode: Mode): void;
  setHealthz(status: number): void;
  hits(): number;
  close(): Promise<void>;
};

async function listen(options: BackendOptions): Promise<Running> {
  const host = options.host ?? "127.0.0.1";
  let mode: Mode = options.mode ?? { kind: "ok" };
  let healthz = options.healthz;
  let hits = 0;
  const sockets = new Set<Socket>();
  const hung = new Set<ServerResponse>();

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    if (healthz !== undefined && req.url === "/healthz") {
      req.resume();
      res.writeHead(healthz, { "content-length": 0 });
      return void res.end();
    }
    hits++;
    // Drain the body; nothing here needs it.
    req.resume();
    const current = mode;
    const reply = (status: number, headers: Record<string, string> = {}) => {
      const body: BackendReply = {
        backend: options.name,
        host: req.headers.host,
        method: req.method,
        path: req.url,
        status,
        ...(options.tls ? { sni: (req.socket as TLSSocket).servername } : {}),
      };
      const text = JSON.stringify(body);
      res.writeHead(status, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(text),
        "x-backend": options.name,
        ...headers,
      });
      res.end(text);
    };
    switch (current.kind) {
      case "ok":
        return reply(200);
      case "status":
        return reply(current.status, current.headers);
      case "hang":
        hung.add(res);
        res.on("close", () => hung.delete(res));
        return;
      case "delay": {
        const timer = setTimeout(() => reply(200), current.ms);
        res.on("close", () => clearTimeout(timer));
        return;
      }
    }
  };

  const server: Server = options.tls
    ? createHttpsServer(
        {
          key: readFileSync(options.tls.keyFile),
          cert: readFileSync(options.tls.certFile),
          // No session resumption: Node reports no servername on a resumed session, and
          // every connection should show the SNI the client really sent.
          secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
        },
        handler,
      )
    : createHttpServer(handler);
  server.keepAliveTimeout = 60_000;
  // A hung request must stay hung; Node's default would answer 408 after 5 minutes at most anyway.
  server.requestTimeout = 0;
  server.on(options.tls ? "secureConnection" : "connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(options.port ?? 0, host, () => ok());
  });
  const port = (server.address() as { port: number }).port;
  return {
    server,
    port,
    setMode: (m) => {
      mode = m;
    },
    setHealthz: (status) => {
      healthz = status;
    },
    hits: () => hits,
    close: () =>
      new Promise<void>((ok) => {
        for (const res of hung) res.destroy();
        for (const socket of sockets) socket.destroy();
        server.close(() => ok());
      }),
  };
}

/** A backend in this process. */
export async function startBackend(options: BackendOptions): Promise<Backend> {
  const host = options.host ?? "127.0.0.1";
  const running = await listen(options);
  return {
    name: options.name,
    host,
    port: running.port,
    address: `${host}:${running.port}`,
    setMode: async (mode) => running.setMode(mode),
    setHealthz: async (status) => running.setHealthz(status),
    hits: async () => running.hits(),
    close: () => running.close(),
  };
}

// ---- child-process backends -------------------------------------------------------------

type ToChild =
  | { type: "mode"; id: number; mode: Mode }
  | { type: "healthz"; id: number; status: number }
  | { type: "hits"; id: number };
type FromChild = { type: "ready"; port: number } | { type: "reply"; id: number; hits: number };

const SELF = import.meta.filename;

/** A backend in a child process of its own, which `kill()` SIGKILLs. */
export async function spawnBackend(options: BackendOptions): Promise<ChildBackend> {
  const host = options.host ?? "127.0.0.1";
  // The port is fixed at the first start so that a restart comes back where the EndpointSlice points.
  const port = options.port ?? (await freePort(host));
  let mode: Mode = options.mode ?? { kind: "ok" };
  let healthz = options.healthz;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let nextId = 0;
  const pending = new Map<number, (hits: number) => void>();

  const start = async () => {
    const config: BackendOptions = { ...options, host, port, mode, ...(healthz === undefined ? {} : { healthz }) };
    // Node runs the .ts file itself; no loader flags from the parent (vitest's) are wanted.
    const proc = fork(SELF, ["--child", JSON.stringify(config)], {
      execArgv: [],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    child = proc;
    exited = new Promise((ok) => proc.once("exit", () => ok()));
    proc.on("message", (message: FromChild) => {
      if (message.type === "reply") {
        pending.get(message.id)?.(message.hits);
        pending.delete(message.id);
      }
    });
    await new Promise<void>((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`backend ${options.name} did not start within 30s`)), 30_000);
      proc.once("exit", (code, signal) => {
        clearTimeout(timer);
        fail(new Error(`backend ${options.name} exited during start (code ${code}, signal ${signal})`));
      });
      proc.on("message", (message: FromChild) => {
        if (message.type === "ready") {
          clearTimeout(timer);
          ok();
        }
      });
    });
  };
  /** Sends a message and waits for the child's reply (the hit count); 0 when the child is down. */
  const ask = async (message: ToChild): Promise<number> => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null || !proc.connected) return 0;
    const reply = new Promise<number>((ok) => {
      pending.set(message.id, ok);
      proc.once("exit", () => ok(0));
    });
    proc.send(message);
    return reply;
  };
  const stop = async (signal: NodeJS.Signals) => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(signal);
    await exited;
  };

  await start();
  return {
    name: options.name,
    host,
    port,
    address: `${host}:${port}`,
    get pid() {
      return child?.pid;
    },
    get alive() {
      return !!child && child.exitCode === null && child.signalCode === null;
    },
    setMode: async (m) => {
      mode = m;
      await ask({ type: "mode", id: nextId++, mode: m });
    },
    setHealthz: async (status) => {
      healthz = status;
      await ask({ type: "healthz", id: nextId++, status });
    },
    hits: () => ask({ type: "hits", id: nextId++ }),
    kill: () => stop("SIGKILL"),
    restart: async () => {
      await stop("SIGKILL");
      await start();
    },
    close: () => stop("SIGKILL"),
  };
}

// The child side: `node backend.ts --child '<options json>'`.
if (process.argv[1] === SELF && process.argv[2] === "--child") {
  const options = JSON.parse(process.argv[3]!) as BackendOptions;
  const running = await listen(options);
  process.on("message", (message: ToChild) => {
    if (message.type === "mode") running.setMode(message.mode);
    if (message.type === "healthz") running.setHealthz(message.status);
    process.send!({ type: "reply", id: message.id, hits: running.hits() } satisfies FromChild);
  });
  // Lose the parent, stop too: no orphans if a test runner dies.
  process.on("disconnect", () => process.exit(0));
  process.send!({ type: "ready", port: running.port } satisfies FromChild);
}
