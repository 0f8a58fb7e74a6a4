// What the kubelet does for a ConfigMap volume, for one ConfigMap: watch it (here with
// `kubectl get -w`) and, whenever its data changes, write the new payload into the folder
// with the kubelet's atomic swap (ConfigMapVolume). Envoy watches that folder.
import type { ChildProcess } from "node:child_process";
import { kubectlBinary } from "./kubectl.ts";
import { ConfigMapVolume } from "./configmap-volume.ts";
import { guardedSpawn } from "./processes.ts";

export type ConfigMapSync = {
  readonly volume: ConfigMapVolume;
  /** Resolves at the first write of the ConfigMap's data into the folder. */
  readonly firstWrite: Promise<void>;
  /** Writes so far (unchanged payloads are not written, as with the kubelet). */
  writes(): number;
  stop(): Promise<void>;
};

export type SyncOptions = {
  kubeconfig: string;
  namespace: string;
  name: string;
  dir: string;
  /** Called after each write that changed the folder, with the keys whose content changed. */
  onWrite?: (changed: string[]) => void;
  /** Called with kubectl's complaints and with write errors. */
  onProblem?: (message: string) => void;
};

export function syncConfigMap(options: SyncOptions): ConfigMapSync {
  const volume = new ConfigMapVolume(options.dir);
  let writes = 0;
  let stopped = false;
  let child: ChildProcess | undefined;
  let restartTimer: NodeJS.Timeout | undefined;
  let resolveFirst!: () => void;
  const firstWrite = new Promise<void>((done) => (resolveFirst = done));

  const apply = (object: { data?: Record<string, string> }) => {
    const data = object.data ?? {};
    if (!Object.keys(data).length) return;
    try {
      const before = new Map(volume.keys().map((key) => [key, volume.read(key)]));
      if (volume.write(data).changed) {
        writes++;
        const changed = Object.keys(data).filter((key) => before.get(key) !== data[key]);
        options.onWrite?.([...changed, ...[...before.keys()].filter((key) => !(key in data))].sort());
      }
      resolveFirst();
    } catch (error) {
      options.onProblem?.(`could not write ${options.dir}: ${(error as Error).message}`);
    }
  };

  const watch = () => {
    // A field selector, not a name: `get -w NAME` fails while the ConfigMap does not exist yet.
    const args = [
      "--kubeconfig",
      options.kubeconfig,
      "get",
      "configmaps",
      "-n",
      options.namespace,
      "--field-selector",
      `metadata.name=${options.name}`,
      "--watch",
      "--output",
      "json",
    ];
    const proc = guardedSpawn(kubectlBinary, args, { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    const splitter = jsonStream((object) => apply(object as { data?: Record<string, string> }));
    proc.stdout!.setEncoding("utf8").on("data", splitter);
    let stderr = "";
    proc.stderr!.setEncoding("utf8").on("data", (s: string) => (stderr += s));
    proc.once("exit", () => {
      if (stopped) return;
      // Watches end (server timeouts, restarts): start again, as an informer would.
      if (stderr.trim()) options.onProblem?.(`kubectl watch ended: ${stderr.trim().split("\n").pop()}`);
      restartTimer = setTimeout(watch, 1_000);
    });
  };
  watch();

  return {
    volume,
    firstWrite,
    writes: () => writes,
    async stop() {
      stopped = true;
      clearTimeout(restartTimer);
      const proc = child;
      if (proc && proc.exitCode === null && proc.signalCode === null) {
        const gone = new Promise((done) => proc.once("exit", done));
        proc.kill("SIGTERM");
        await gone;
      }
    },
  };
}

/** Splits a stream of concatenated JSON documents (kubectl -w -o json) into objects. */
export function jsonStream(onObject: (value: unknown) => void): (chunk: string) => void {
  let buffer = "";
  let depth = 0;
  let inString = false;
  let escaped = false;
  let scanned = 0;
  return (chunk) => {
    buffer += chunk;
    for (; scanned < buffer.length; scanned++) {
      const c = buffer[scanned];
      if (inString) {
        if (escaped) escaped = false;
        else if (c === "\\") escaped = true;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === "{") depth++;
      else if (c === "}" && --depth === 0) {
        const text = buffer.slice(0, scanned + 1);
        buffer = buffer.slice(scanned + 1);
        scanned = -1;
        onObject(JSON.parse(text));
      }
    }
  };
}
