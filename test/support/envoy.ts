// The real Envoy, as installed by `make setup` into .local/bin.
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ENVOY = resolve(import.meta.dirname, "../../.local/bin/envoy");

/** `envoy --mode validate` on a bootstrap; returns Envoy's complaint, or "" when it accepts it. */
export function envoyValidate(bootstrapYaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), "envoy-validate-"));
  const file = join(dir, "bootstrap.yaml");
  writeFileSync(file, bootstrapYaml);
  const run = spawnSync(ENVOY, ["--mode", "validate", "-c", file, "-l", "error", "--disable-hot-restart"], { encoding: "utf8" });
  return run.status === 0 ? "" : `${run.stdout}\n${run.stderr}`.trim();
}
