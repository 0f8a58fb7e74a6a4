// The Node.js flags a bin runs with live in its shebang (`#!/usr/bin/env -S node FLAGS`),
// so `npx fallbackctl` and `./operator/bin/…` get them. Whatever starts a bin with
// `node` directly (tests, benchmarks, the demo) reads them from there, and the Dockerfile
// repeats them (test/unit/chart/dockerfile.test.ts checks it does).
import { readFileSync } from "node:fs";

/** The flags after `node` in the file's shebang line; none when it has no such line. */
export function nodeFlagsOf(bin: string): string[] {
  const first = readFileSync(bin, "utf8").split("\n", 1)[0]!;
  const match = /^#!\/usr\/bin\/env\s+(?:-S\s+)?node(?:\s+(.*))?$/.exec(first);
  return match?.[1]?.trim().split(/\s+/) ?? [];
}
