// Where the repository and its programs are, for whatever starts them.
import { join, resolve } from "node:path";

export const repoRoot = resolve(import.meta.dirname, "../..");
/** The bins start as plain `node <bin>`: each sets its own Node.js flags (operator/bin/node-flags.ts). */
export const operatorBin = join(repoRoot, "operator/bin/fallback-operator.ts");
export const fallbackctlBin = join(repoRoot, "operator/bin/fallbackctl.ts");
