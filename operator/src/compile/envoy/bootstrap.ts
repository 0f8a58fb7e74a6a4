// Envoy resources -> what Envoy is started with: either one bootstrap holding everything
// under static_resources, or the file-based set (cds.yaml, lds.yaml and a bootstrap.yaml
// that watches their folder) that the operator writes into a ConfigMap.
import type { CompileOptions } from "../snapshot.ts";
import { inlinedConfig, inlinedValue } from "./files.ts";
import type { Resources } from "./types.ts";

function base(options: CompileOptions): object {
  return {
    node: { id: "fallback-envoy", cluster: "fallback-envoy" },
    admin: { address: { socket_address: { address: options.admin.address, port_value: options.admin.port } } },
  };
}

export function staticBootstrap(resources: Resources, options: CompileOptions): object {
  const config = inlinedConfig(resources, options.listen);
  const listener = config.listener(config.virtualHosts.map((v) => v.value()));
  return { ...base(options), static_resources: { listeners: [listener], clusters: config.clusters.map(inlinedValue) } };
}

export const CONFIG_FILES = { bootstrap: "bootstrap.yaml", clusters: "cds.yaml", listeners: "lds.yaml" } as const;

// Envoy reloads a path_config_source when the watched folder sees a move, which is how the
// kubelet swaps a ConfigMap volume's `..data` link; so watch the folder, not the file.
function fileSource(options: CompileOptions, file: string) {
  const dir = options.configDir.replace(/\/$/, "");
  return { path_config_source: { path: `${dir}/${file}`, watched_directory: { path: dir } }, resource_api_version: "V3" };
}

export function fileBootstrap(options: CompileOptions): object {
  return {
    ...base(options),
    dynamic_resources: {
      cds_config: fileSource(options, CONFIG_FILES.clusters),
      lds_config: fileSource(options, CONFIG_FILES.listeners),
    },
  };
}
