// Resource references and a small JSON client for any resource kind.
//
// Why not KubernetesObjectApi: it deserialises responses into model classes (timestamps
// become Date objects) while a watch hands out plain JSON, so a cache filled from both
// would hold two shapes of the same object; and it cannot address subresources such as
// /status. This client keeps every object as the plain JSON the API server sent. It speaks
// HTTP itself (transport.ts), over one connection pool; only the kubeconfig and the
// credentials come from client-node (kubeconfig.ts). Errors from the API are KubeApiErrors
// (errors.ts), which carry what client-node's ApiException does.

import { HttpMethod, PatchStrategy, type KubeConfig } from "./kube.ts";
import { KubeApiError } from "./errors.ts";
import { Transport } from "./transport.ts";

/** Which resource: group ("" for the core group), version and plural name, as in kopf. */
export interface ResourceRef {
  group: string;
  version: string;
  plural: string;
  /** Kind; optional, as objects from the API carry their own. */
  kind?: string;
  /** Default true. */
  namespaced?: boolean;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  finalizers?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [field: string]: unknown;
}

/** Any Kubernetes object, as plain JSON. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

export interface ObjectList<T extends KubeObject = KubeObject> {
  items: T[];
  /** The list's resourceVersion: where a watch continues from. */
  resourceVersion: string;
}

export const apiVersionOf = (ref: ResourceRef): string => (ref.group ? `${ref.group}/${ref.version}` : ref.version);

/** A readable name for logs and metrics: "configmaps" or "fallbackpolicies.fallback.dev". */
export const resourceName = (ref: ResourceRef): string => (ref.group ? `${ref.plural}.${ref.group}` : ref.plural);

/** The REST path of a collection, an object, or one of its subresources. */
export function resourcePath(ref: ResourceRef, namespace?: string, name?: string, subresource?: string): string {
  const base = ref.group ? `/apis/${ref.group}/${ref.version}` : `/api/${ref.version}`;
  const ns = (ref.namespaced ?? true) && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : "";
  const obj = name ? `/${encodeURIComponent(name)}` : "";
  const sub = name && subresource ? `/${subresource}` : "";
  return `${base}${ns}/${ref.plural}${obj}${sub}`;
}

/** The cache and queue key of an object: "namespace/name", or "name" if cluster-scoped. */
export function objectKey(obj: { metadata: { name: string; namespace?: string } }): string {
  return obj.metadata.namespace ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name;
}

export function parseKey(key: string): { namespace?: string; name: string } {
  const slash = key.indexOf("/");
  return slash < 0 ? { name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

export type PatchType = "merge" | "json" | "apply";

const contentTypes: Record<PatchType, string> = {
  merge: PatchStrategy.MergePatch,
  json: PatchStrategy.JsonPatch,
  apply: PatchStrategy.ServerSideApply,
};

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
}

export interface PatchOptions {
  type?: PatchType;
  subresource?: string;
  /** Required for server-side apply. */
  fieldManager?: string;
  force?: boolean;
}

export class KubeClient {
  readonly kubeConfig: KubeConfig;
  private readonly transport: Transport;
  private readonly timeoutMs: number;

  /** A client-node KubeConfig does as well as the framework's own. */
  constructor(kubeConfig: KubeConfig, options: { timeoutMs?: number } = {}) {
    this.kubeConfig = kubeConfig;
    // A request to an API server that is restarting can hang; never wait forever.
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.transport = new Transport(kubeConfig, { agentGraceMs: this.timeoutMs });
  }

  async request<T>(method: HttpMethod, path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.transport.request({
      method,
      path,
      query: options.query,
      ...(options.body !== undefined
        ? { body: JSON.stringify(options.body), contentType: options.contentType ?? "application/json" }
        : {}),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const data: unknown = response.text ? safeParse(response.text) : undefined;
    if (response.status >= 200 && response.status < 300) return data as T;
    throw apiError(response.status, data, response.headers);
  }

  /**
   * Watches a collection: calls `onEvent` with each event's type and object as they
   * arrive (newline-delimited JSON). Resolves when the server ends the watch; rejects on a
   * status other than 2xx (a KubeApiError), a broken connection, or when `signal` fires
   * (with its reason).
   */
  async watch(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    onEvent: (type: string, object: unknown) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const x = { method: HttpMethod.GET, path, query: { ...query, watch: true }, signal };
    const res = await this.transport.open(x);
    const status = res.statusCode ?? 0;
    res.setEncoding("utf8");
    if (status < 200 || status >= 300) {
      let text = "";
      for await (const chunk of res) text += chunk as string;
      throw apiError(status, text ? safeParse(text) : undefined, res.headers);
    }
    let rest = "";
    try {
      for await (const chunk of res) {
        const lines = (rest + (chunk as string)).split("\n");
        rest = lines.pop()!;
        for (const line of lines) {
          if (!line.trim()) continue;
          const event = JSON.parse(line) as { type: string; object: unknown };
          onEvent(event.type, event.object);
        }
      }
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw err instanceof SyntaxError ? new Error(`watch ${path}: not a JSON event: ${err.message}`) : err;
    }
    if (!res.complete) throw signal.aborted ? signal.reason : new Error(`watch ${path}: the connection broke`);
  }

  /** Lists every object, following `continue` tokens in pages of `limit`. */
  async list<T extends KubeObject = KubeObject>(
    ref: ResourceRef,
    options: { namespace?: string; labelSelector?: string; fieldSelector?: string; limit?: number } = {},
  ): Promise<ObjectList<T>> {
    const items: T[] = [];
    let cont: string | undefined;
    let resourceVersion = "";
    do {
      const page = await this.request<{
        kind?: string;
        items?: T[];
        metadata?: { resourceVersion?: string; continue?: string };
      }>(HttpMethod.GET, resourcePath(ref, options.namespace), {
        query: {
          labelSelector: options.labelSelector,
          fieldSelector: options.fieldSelector,
          limit: options.limit ?? 500,
          continue: cont,
        },
      });
      // List responses leave out apiVersion/kind on items; watch events carry them.
      // Fill them in so the cache holds one shape whichever way an object arrived.
      const kind = ref.kind ?? page.kind?.replace(/List$/, "");
      for (const item of page.items ?? []) {
        items.push({ ...item, apiVersion: item.apiVersion ?? apiVersionOf(ref), kind: item.kind ?? kind });
      }
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      cont = page.metadata?.continue || undefined;
    } while (cont);
    return { items, resourceVersion };
  }

  get<T extends KubeObject = KubeObject>(ref: ResourceRef, namespace: string | undefined, name: string): Promise<T> {
    return this.request<T>(HttpMethod.GET, resourcePath(ref, namespace, name));
  }

  create<T extends KubeObject = KubeObject>(ref: ResourceRef, obj: T, fieldManager?: string): Promise<T> {
    return this.request<T>(HttpMethod.POST, resourcePath(ref, obj.metadata.namespace), {
      body: { apiVersion: apiVersionOf(ref), ...(ref.kind ? { kind: ref.kind } : {}), ...obj },
      query: { fieldManager },
    });
  }

  patch<T extends KubeObject = KubeObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    body: unknown,
    options: PatchOptions = {},
  ): Promise<T> {
    const type = options.type ?? "merge";
    return this.request<T>(HttpMethod.PATCH, resourcePath(ref, namespace, name, options.subresource), {
      body,
      contentType: contentTypes[type],
      query: { fieldManager: options.fieldManager, force: type === "apply" ? options.force : undefined },
    });
  }

  delete(ref: ResourceRef, namespace: string | undefined, name: string): Promise<unknown> {
    return this.request(HttpMethod.DELETE, resourcePath(ref, namespace, name));
  }
}

function apiError(status: number, data: unknown, headers: Record<string, string | string[] | undefined>): KubeApiError {
  const message = (data as { message?: string } | undefined)?.message ?? `HTTP ${status}`;
  const flat = Object.fromEntries(
    Object.entries(headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : (v ?? "")]),
  );
  return new KubeApiError(status, message, data, flat);
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { message: text.slice(0, 500) };
  }
}
