// How a child process ended, for messages like "the operator exited (code 1)".
import type { ChildProcess } from "node:child_process";

/** Resolves once the child has exited or failed to start: "code 1", "signal SIGKILL", or the error. */
export function exitOf(child: ChildProcess): Promise<string> {
  return new Promise((done) => {
    child.once("exit", (code, signal) => done(signal ? `signal ${signal}` : `code ${code}`));
    child.once("error", (error) => done(String(error)));
  });
}
