// Child processes of tests, benchmarks and the demo (the control plane, the operator, Envoy,
// backends): how one ended, its output, and stopping it without leaving it behind.
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { existsSync } from "node:fs";

/** Resolves once the child has exited or failed to start: "code 1", "signal SIGKILL", or the error. */
export function exitOf(child: ChildProcess): Promise<string> {
  return new Promise((done) => {
    child.once("exit", (code, signal) => done(signal ? `signal ${signal}` : `code ${code}`));
    child.once("error", (error) => done(String(error)));
  });
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to its end, `input` on its stdin, and resolves with its exit code (128 when a
 * signal or the timeout ended it) and output; a non-zero exit is the caller's to judge.
 */
export function runCommand(
  command: string,
  args: string[],
  options: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<CommandResult> {
  return new Promise((done, fail) => {
    const proc = spawn(command, args, {
      stdio: ["pipe", "pipe", "pipe"],
      timeout: options.timeoutMs ?? 60_000,
      ...(options.env ? { env: options.env } : {}),
    });
    let stdout = "";
    let stderr = "";
    proc.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s));
    proc.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
    proc.once("error", fail);
    proc.once("close", (code, signal) => done({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
    proc.stdin.on("error", () => {});
    proc.stdin.end(options.input ?? "");
  });
}

export const isRunning = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

/**
 * Sends `signal` (SIGTERM: a graceful stop), then SIGKILL if the child still runs after
 * `killAfterMs`; resolves once it has exited. Does nothing for a child that is gone.
 */
export async function stopChild(
  child: ChildProcess,
  options: { signal?: NodeJS.Signals; killAfterMs?: number } = {},
): Promise<void> {
  if (!isRunning(child)) return;
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  // A child unref'd while it runs would otherwise let a shutting-down parent exit before
  // the child's exit is seen, and the caller awaiting this would never resume.
  child.ref();
  child.kill(options.signal ?? "SIGTERM");
  const timer = setTimeout(() => isRunning(child) && child.kill("SIGKILL"), options.killAfterMs ?? 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Keeps what the child writes to its piped stdout and stderr, interleaved as it arrives;
 * past `maxChars` only the newer half, so a chatty process cannot fill the memory.
 */
export function collectOutput(child: ChildProcess, maxChars = 2_000_000): () => string {
  let output = "";
  const append = (chunk: string) => {
    output += chunk;
    if (output.length > maxChars) output = output.slice(-maxChars / 2);
  };
  // Decoded per stream, so a character split across two chunks stays whole.
  child.stdout?.setEncoding("utf8").on("data", append);
  child.stderr?.setEncoding("utf8").on("data", append);
  return () => output;
}

/**
 * The kernel kills a child started with `guardedSpawn` when this process dies, even by
 * SIGKILL (through `setpriv --pdeathsig SIGKILL`, when util-linux has it), and it gets a
 * process group of its own, so a Ctrl-C in the terminal reaches only the parent, which then
 * stops its children in order.
 */
const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find((path) => existsSync(path));

/** spawn(), but the child dies with this process and has its own process group. */
export function guardedSpawn(command: string, args: string[], options: SpawnOptions): ChildProcess {
  const [cmd, argv] = SETPRIV ? [SETPRIV, ["--pdeathsig", "SIGKILL", "--", command, ...args]] : [command, args];
  return spawn(cmd, argv, { ...options, detached: true });
}
