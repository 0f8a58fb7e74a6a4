// Envoy resources -> what Envoy is started with: either one bootstrap holding everything
// under static_resources, or the file-based xDS set (cds.yaml, lds.yaml and a bootstrap.yaml
// that watches their folder) that the operator writes into a ConfigMap.
import type { CompileOptions } from "../snapshot.ts";
import { TYPE, type Resources } from "./types.ts";

function base(options: CompileOptions): object {
  return {
    node: { id: "fallback-envoy", cluster: "fallback-envoy" },
    admin: { address: { socket_address: { address: options.admin.address, port_value: options.admin.port } } },
  };
}

export function staticBootstrap(resources: Resources, options: CompileOptions): object {
  return { ...base(options), static_resources: { listeners: resources.listeners, clusters: [...resources.clusters] } };
}

export const XDS_FILES = { bootstrap: "bootstrap.yaml", clusters: "cds.yaml", listeners: "lds.yaml" } as const;

// Envoy reloads a path_config_source when the watched folder sees a move, which is how the
// kubelet swaps a ConfigMap volume's `..data` link; so watch the folder, not the file.
function fileSource(options: CompileOptions, file: string) {
  const dir = options.configDir.replace(/\/$/, "");
  return { path_config_source: { path: `${dir}/${file}`, watched_directory: { path: dir } }, resource_api_version: "V3" };
}

export function xdsBootstrap(options: CompileOptions): object {
  return {
    ...base(options),
    dynamic_resources: {
      cds_config: fileSource(options, XDS_FILES.clusters),
      lds_config: fileSource(options, XDS_FILES.listeners),
    },
  };
}

/**
 * The resource files of the xDS set: each file's name, the type of its resources, and them.
 * `itemLines` names a list inside a resource whose items each deserve a line of their own
 * (the listener's virtual hosts, one per policy), so a policy's change is a one-line diff.
 */
export function xdsResourceFiles(resources: Resources): { file: string; type: string; items: Iterable<object>; itemLines?: string }[] {
  return [
    { file: XDS_FILES.clusters, type: TYPE.cluster, items: resources.clusters },
    { file: XDS_FILES.listeners, type: TYPE.listener, items: resources.listeners, itemLines: "virtual_hosts" },
  ];
}
