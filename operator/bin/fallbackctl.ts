#!/usr/bin/env node
// Static imports stay at the tiny flags module: the CLI loads after the relaunch, so the
// first process does no work that the second would only repeat.
import { FALLBACKCTL_NODE_FLAGS, runWithNodeFlags } from "./node-flags.ts";

runWithNodeFlags(FALLBACKCTL_NODE_FLAGS);
const { main } = await import("../src/cli/main.ts");

process.exitCode = main(process.argv.slice(2));
