#!/usr/bin/env node
import { main } from "../src/controller/main.ts";

process.exitCode = await main(process.argv.slice(2));
