// Resource references and a small JSON client for any resource kind.
//
// Why not KubernetesObjectApi: it deserialises responses into model classes (timestamps
// become Date objects) while Watch hands out plain JSON, so a cache filled from both
// would hold two shapes of the same object; and it cannot address subresources such as
// /status. This client keeps every object as the plain JSON the API server sent, and
// still goes through client-node's own HTTP stack: the Configuration from
// KubeConfig.makeApiClient (auth, TLS, proxy dispatcher, user agent) and ApiException
// for errors, so callers handle its failures exactly like the typed APIs'.

import {
  ApiException,
  HttpMethod,
  PatchStrategy,
  type Configuration,
  type KubeConfig,
  type RequestContext,
} from "./kube.ts";

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

export const apiVersionOf = (ref: ResourceRef): string =>
  ref.group ? `${ref.group}/${ref.version}` : ref.version;

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

/** Receives client-node's Configuration; only KubeConfig.makeApiClient constructs it. */
class Transport {
  readonly config: Configuration;
  constructor(config: Configuration) {
    this.config = config;
  }
}

export class KubeClient {
  readonly kubeConfig: KubeConfig;
  private readonly transport: Transport;
  private readonly timeoutMs: number;
  private dispatcher: ReturnType<RequestContext["getDispatcher"]>;

  constructor(kubeConfig: KubeConfig, options: { timeoutMs?: number } = {}) {
    this.kubeConfig = kubeConfig;
    this.transport = kubeConfig.makeApiClient(Transport);
    // A request to an API server that is restarting can hang; never wait forever.
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  async request<T>(method: HttpMethod, path: string, options: RequestOptions = {}): Promise<T> {
    const { baseServer, authMethods, middleware, httpApi } = this.transport.config;
    let ctx = baseServer.makeRequestContext(path, method);
    ctx.setHeaderParam("Accept", "application/json");
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) ctx.setQueryParam(key, String(value));
    }
    if (options.body !== undefined) {
      ctx.setHeaderParam("Content-Type", options.contentType ?? "application/json");
      ctx.setBody(JSON.stringify(options.body));
    }
    ctx.setSignal(AbortSignal.timeout(this.timeoutMs));
    await authMethods.default?.applySecurityAuthentication(ctx);
    // client-node 2.0.1 makes a new connection pool for every request, so each call pays a
    // TCP and TLS handshake and memory grows with the request count. Keep the first one:
    // the TLS material comes from the kubeconfig and does not change; tokens are headers.
    const dispatcher = ctx.getDispatcher();
    if (dispatcher) ctx.setDispatcher((this.dispatcher ??= dispatcher));
    for (const m of middleware) ctx = await m.pre(ctx).toPromise();

    const response = await httpApi.send(ctx).toPromise();
    const text = await response.body.text();
    const data: unknown = text ? safeParse(text) : undefined;
    if (response.httpStatusCode >= 200 && response.httpStatusCode < 300) return data as T;
    const message = (data as { message?: string } | undefined)?.message ?? `HTTP ${response.httpStatusCode}`;
    throw new ApiException(response.httpStatusCode, message, data, response.headers);
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
      }>(
        HttpMethod.GET,
        resourcePath(ref, options.namespace),
        {
          query: {
            labelSelector: options.labelSelector,
            fieldSelector: options.fieldSelector,
            limit: options.limit ?? 500,
            continue: cont,
          },
        },
      );
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

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { message: text.slice(0, 500) };
  }
}
