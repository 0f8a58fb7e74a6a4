// Envoy resources -> the text of the files Envoy runs on without an xDS server: a bootstrap
// with every resource in it (fallbackctl), or the ConfigMap's bootstrap.yaml, cds.yaml and
// lds.yaml it watches (the operator). Same input, same bytes: objects are built in a fixed
// order and policies sorted by key, so the output diffs cleanly in GitOps.
import { createHash } from "node:crypto";
import { CONFIG_FILES, fileBootstrap, staticBootstrap } from "./envoy/bootstrap.ts";
import { inlinedConfig, inlinedValue } from "./envoy/files.ts";
import { TYPE, type Resource, type Resources, type VirtualHost } from "./envoy/types.ts";
import type { CompileOptions } from "./snapshot.ts";
import { jsonText, toYaml } from "./yaml.ts";

export function renderBootstrap(resources: Resources, options: CompileOptions): string {
  return toYaml(staticBootstrap(resources, options));
}

/**
 * The JSON text of resources (and of policies' virtual hosts), remembered while
 * their source is the very same object. The operator renders mostly the same resources
 * from one sync to the next; a one-off render (fallbackctl) has no use for one.
 */
export class TextCache {
  private readonly texts = new WeakMap<object, Map<string, string>>();

  text<T extends { source: object }>(item: T, key: string, valueOf: (item: T) => object): string {
    let byKey = this.texts.get(item.source);
    let text = byKey?.get(key);
    if (text === undefined) {
      text = jsonText(valueOf(item));
      if (!byKey) this.texts.set(item.source, (byKey = new Map()));
      byKey.set(key, text);
    }
    return text;
  }
}

/**
 * The file-based config Envoy loads from the ConfigMap, and the hash of its content (which
 * names the config in status).
 *
 * bootstrap.yaml is block YAML, for people. cds.yaml and lds.yaml are for Envoy and for
 * diffs: under `resources:`, a line `- {…}` per resource, its JSON text, which YAML reads as
 * a flow mapping; the HTTP listener takes a line per virtual host, so a policy's change is a
 * one-line diff. JSON.stringify is native, faster than any YAML emitter in JavaScript, and
 * the files are smaller than block YAML (docs/benchmarks.md, "Why the code is so").
 *
 * The hash covers every file's name and text but the version_info lines, which are its
 * first 16 digits: it changes exactly when the content does.
 */
export function renderConfigFiles(
  resources: Resources,
  options: CompileOptions,
  cache?: TextCache,
): { files: Record<string, string>; hash: string } {
  const bootstrap = toYaml(fileBootstrap(options));
  const sha = createHash("sha256").update(`${CONFIG_FILES.bootstrap}\n${bootstrap}\n`);
  const config = inlinedConfig(resources, options.listen);
  // The key tells apart what one source makes: a policy's clusters and its virtual host.
  const textOf = <T extends { source: object }>(item: T, key: string, valueOf: (item: T) => object) =>
    cache ? cache.text(item, key, valueOf) : jsonText(valueOf(item));

  const clusterValue = typed(TYPE.cluster);
  const listenerValue = typed(TYPE.listener);

  const clusters = new FileBody(sha, CONFIG_FILES.clusters);
  for (const cluster of config.clusters)
    clusters.add("- ", textOf(cluster, `cluster ${cluster.name}`, clusterValue), "\n");
  clusters.finish();

  // The HTTP listener first, then the internal listeners of external backends.
  const listeners = new FileBody(sha, CONFIG_FILES.listeners);
  const hosts = config.virtualHosts.map((host) => textOf(host, `virtual host ${host.owner}`, valueOfPart));
  listeners.add("- ");
  writeHttpListener(listeners, (virtualHosts) => ({ "@type": TYPE.listener, ...config.listener(virtualHosts) }), hosts);
  listeners.add("\n");
  for (const internal of config.internalListeners)
    listeners.add("- ", textOf(internal, `listener ${internal.name}`, listenerValue), "\n");
  listeners.finish();

  const hash = sha.digest("hex");
  const head = `version_info: "${hash.slice(0, 16)}"\nresources:`;
  // Each file is joined once, head and all: lds.yaml of a large install is tens of MB, and a
  // body joined first and prefixed after would be copied twice.
  const files: Record<string, string> = { [CONFIG_FILES.bootstrap]: bootstrap };
  for (const body of [clusters, listeners])
    files[body.file] = body.done.length ? [head, "\n", ...body.done].join("") : `${head} []\n`;
  return { files, hash: `sha256:${hash}` };
}

/**
 * A file's text after its head, collected a few thousand pieces at a time and hashed as it
 * goes: short-lived pieces cost the garbage collector little, unlike tens of thousands kept
 * to the end.
 */
class FileBody {
  readonly file: string;
  /** The text, once finished. */
  readonly done: string[] = [];
  private readonly sha: ReturnType<typeof createHash>;
  private pieces: string[] = [];

  constructor(sha: ReturnType<typeof createHash>, file: string) {
    this.sha = sha;
    this.file = file;
    sha.update(`${file}\n`);
  }

  add(...pieces: string[]): void {
    this.pieces.push(...pieces);
    if (this.pieces.length >= PIECES_PER_CHUNK) this.finish();
  }

  /** Hashes and keeps what was added so far (every file's text is hashed in turn). */
  finish(): void {
    if (!this.pieces.length) return;
    const chunk = this.pieces.join("");
    this.sha.update(chunk);
    this.done.push(chunk);
    this.pieces = [];
  }
}

const PIECES_PER_CHUNK = 4000;

const valueOfPart = (host: VirtualHost) => host.value();

/** A resource's value as the files hold it: its type URL first, then what inlinedValue gives. */
const typed =
  (type: string) =>
  (resource: Resource): object => ({ "@type": type, ...inlinedValue(resource) });

/**
 * Writes the HTTP listener's JSON text as JSON.stringify would, but for its list of virtual
 * hosts: that is written from `hosts`, the hosts' texts, one per line, indented so that YAML
 * reads the lines as part of the one flow mapping. `listenerOf` builds the listener around a
 * list that stands for the hosts (it is found by identity, not by searching the text).
 */
function writeHttpListener(body: FileBody, listenerOf: (virtualHosts: object[]) => object, hosts: string[]): void {
  const slot: object[] = [];
  let found = 0;
  const write = (value: unknown): void => {
    if (value === slot) {
      found++;
      if (!hosts.length) body.add("[]");
      else {
        hosts.forEach((host, i) => body.add(i ? ",\n    " : "[\n    ", host));
        body.add("\n  ]");
      }
    } else if (Array.isArray(value)) {
      body.add("[");
      value.forEach((item, i) => {
        if (i) body.add(",");
        if (isAbsent(item)) body.add("null");
        else write(item);
      });
      body.add("]");
    } else if (isPlainObject(value)) {
      body.add("{");
      let first = true;
      for (const key of Object.keys(value)) {
        const item = value[key];
        if (isAbsent(item)) continue;
        body.add(first ? "" : ",", jsonText(key), ":");
        first = false;
        write(item);
      }
      body.add("}");
    } else {
      body.add(jsonText(value)); // a scalar, or something with a toJSON of its own
    }
  };
  write(listenerOf(slot));
  if (found !== 1) throw new Error("the HTTP listener must hold exactly one list of virtual hosts");
}

/** What JSON.stringify leaves out of an object, and writes as null in an array. */
const isAbsent = (value: unknown) => value === undefined || typeof value === "function" || typeof value === "symbol";

/** An object JSON.stringify writes key by key: no toJSON of its own, no class but Object. */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value);
  return (proto === Object.prototype || proto === null) && typeof (value as { toJSON?: unknown }).toJSON !== "function";
}
