// The project's helm (.local/bin/helm) and the chart, for the chart tests: unit tests render
// it, integration tests install it.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./paths.ts";

export const chartDir = join(repoRoot, "charts/fallback-operator");
export const helmBinary = join(repoRoot, ".local/bin/helm");

/** helm, or a hint to run the setup when it is not installed. */
export function helmBin(): string {
  if (existsSync(helmBinary)) return helmBinary;
  throw new Error(`helm not found at ${helmBinary}: run scripts/setup.sh (or make setup) first`);
}

/** An environment that keeps helm away from the user's repositories, cache and plugins. */
export const helmEnv = (): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH ?? "",
  HOME: process.env.HOME ?? "/tmp",
  HELM_CACHE_HOME: join(repoRoot, ".local/helm/cache"),
  HELM_CONFIG_HOME: join(repoRoot, ".local/helm/config"),
  HELM_DATA_HOME: join(repoRoot, ".local/helm/data"),
});
