#!/usr/bin/env node
// Static imports stay at the tiny flags module: everything else loads after the relaunch,
// so the first process does no work that the second would only repeat.
import { OPERATOR_NODE_FLAGS, runWithNodeFlags } from "./node-flags.ts";

runWithNodeFlags(OPERATOR_NODE_FLAGS);
const { main } = await import("../src/controller/main.ts");

process.exitCode = await main(process.argv.slice(2));
