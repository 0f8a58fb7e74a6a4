// Every process the demo starts is known here, so that one call stops them all, newest
// first: at the normal end, on Ctrl-C and on failure. Two more guards against orphans:
//
// - Processes started with `guardedSpawn` (test/support/processes.ts) die with the demo,
//   even when it is SIGKILLed, and a Ctrl-C in the terminal reaches only the demo, which
//   then stops them in order.
// - Every pid goes into <dir>/pids. A later demo run stops whatever an earlier one left.
import type { ChildProcess } from "node:child_process";
import { appendFileSync, closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exitOf, guardedSpawn, stopChild } from "../../test/support/processes.ts";

export type Managed = {
  readonly name: string;
  readonly pid: number | undefined;
  running(): boolean;
  /** "code 1", "signal SIGKILL", or undefined while it runs. */
  exitInfo(): string | undefined;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
  /** SIGTERM, then SIGKILL after `timeoutMs`; resolves once it is gone. */
  stop(timeoutMs?: number): Promise<void>;
};

/** Starts a long-running process whose stdout and stderr go to `logFile`. */
export function startLogged(
  name: string,
  command: string,
  args: string[],
  logFile: string,
  env?: NodeJS.ProcessEnv,
): Managed {
  const log = openSync(logFile, "a");
  let child: ChildProcess;
  try {
    child = guardedSpawn(command, args, { stdio: ["ignore", log, log], ...(env ? { env } : {}) });
  } finally {
    closeSync(log);
  }
  let info: string | undefined;
  const exited = exitOf(child).then((how) => void (info = how));
  const running = () => info === undefined;
  return {
    name,
    pid: child.pid,
    running,
    exitInfo: () => info,
    exited,
    async stop(timeoutMs = 10_000) {
      await stopChild(child, { killAfterMs: timeoutMs });
      await exited;
    },
  };
}

/** The demo's processes, and how to stop each. */
export class Supervisor {
  private readonly stops: { what: string; stop: () => Promise<void> }[] = [];
  private readonly pidFile: string;
  private cleaning: Promise<void> | undefined;

  constructor(dir: string) {
    this.pidFile = join(dir, "pids");
    writeFileSync(this.pidFile, "");
  }

  /** Records a pid, so that nothing started here can outlive the demo unnoticed. */
  track(name: string, pid: number | undefined): void {
    if (pid) appendFileSync(this.pidFile, `${pid} ${name}\n`);
  }

  /** Registers how to stop something; cleanup() runs these newest first. */
  onCleanup(what: string, stop: () => Promise<void>): void {
    this.stops.push({ what, stop });
  }

  /** Stops everything registered, newest first; safe to call more than once. */
  cleanup(report: (line: string) => void = () => {}): Promise<void> {
    this.cleaning ??= (async () => {
      for (const { what, stop } of this.stops.reverse()) {
        report(`stopping ${what}`);
        try {
          await stop();
        } catch (error) {
          report(`  could not stop ${what}: ${(error as Error).message}`);
        }
      }
      this.stops.length = 0;
    })();
    return this.cleaning;
  }

  /** Last resort (a second Ctrl-C): SIGKILL every recorded pid that still runs. */
  killAll(): void {
    for (const { pid } of readPids(this.pidFile)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

export function readPids(pidFile: string): { pid: number; name: string }[] {
  let text = "";
  try {
    text = readFileSync(pidFile, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .map((line) => line.match(/^(\d+) (.+)$/))
    .filter((m): m is RegExpMatchArray => m !== null)
    .map((m) => ({ pid: Number(m[1]), name: m[2]! }));
}

/** The command line of a running process (arguments joined by spaces), or undefined. */
export function commandLine(pid: number): string | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    const state = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0];
    return state === "Z" ? undefined : raw.split("\0").join(" ").trim();
  } catch {
    return undefined;
  }
}
