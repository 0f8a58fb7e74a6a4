#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=20
// Node's defaults size V8's heap for a machine, not for a controller that idles between bursts:
// it grows the young generation to 64 MB per half and the old one by up to 4x at a time, and
// keeps what it grew. 4 MB halves, and growth by 20 % at a time, hold the operator at ~175 MB
// instead of ~225 MB with 1,000 policies, at the same latency; with no cap on the heap, as a
// larger install needs more (docs/benchmarks.md).
import { keepClientNodeLean } from "../src/kopf/lean.ts";

// Before the first import of client-node, which main.ts brings in.
keepClientNodeLean();
const { main } = await import("../src/controller/main.ts");

process.exitCode = await main(process.argv.slice(2));
