#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=20 --v8-pool-size=2
// Node's defaults size V8 for a machine, not for a controller that idles between bursts: it
// grows the young generation to 64 MB per half and the old one by up to 4x at a time, keeps
// what it grew, and runs 4 worker threads, each with its own malloc arena. 4 MB halves,
// growth by 20 % at a time and 2 workers (a pod seldom has more cores) hold the operator at
// ~170 MB instead of ~225 MB with 1,000 policies, at the same latency. The heap has no cap,
// as a larger install needs more (docs/benchmarks.md).
import { keepClientNodeLean } from "../src/kopf/lean.ts";

// Before the first import of client-node, which main.ts brings in.
keepClientNodeLean();
const { main } = await import("../src/controller/main.ts");

process.exitCode = await main(process.argv.slice(2));
