// The one schema source for FallbackPolicy. From it come the TypeScript types (`Static`),
// the offline validator (ajv + the same CEL rules) and the CRD in crds/. Every field has a
// description, which is what `kubectl explain` shows; every default says why it was chosen.
//
// A field with a `default` is written here as required and made optional by `finalize`:
// the derived type then describes a policy as stored, with its defaults in force.
import { Type, type Static, type TSchema } from "@sinclair/typebox";

export const GROUP = "fallback.dev";
export const VERSION = "v1alpha1";
export const KIND = "FallbackPolicy";
export const PLURAL = "fallbackpolicies";
export const API_VERSION = `${GROUP}/${VERSION}`;

type Rule = { rule: string; message: string; fieldPath?: string; reason?: string };
const rules = (...list: Rule[]) => ({ "x-kubernetes-validations": list });

const Duration = (description: string, def?: string) =>
  Type.String({
    description: `${description} A duration such as 250ms, 10s, 1m or 1h.`,
    pattern: "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$",
    maxLength: 32,
    ...(def === undefined ? {} : { default: def }),
  });

const Port = (description: string) => Type.Integer({ description, minimum: 1, maximum: 65535 });

// DNS-1035 label, as Kubernetes requires of Service names.
const ServiceName = (description: string) =>
  Type.String({ description, minLength: 1, maxLength: 63, pattern: "^[a-z]([-a-z0-9]*[a-z0-9])?$" });

const TargetRef = Type.Object(
  {
    kind: Type.String({
      description: "Kind of the governed object. Service is the default and, for now, the only value.",
      enum: ["Service"],
      default: "Service",
    }),
    name: ServiceName("Name of the Service, in the policy's namespace."),
    port: Port("The Service port (spec.ports[].port) whose traffic this policy governs."),
  },
  {
    description:
      "The Service port whose traffic falls back. One policy per Service port; the oldest policy wins a tie.",
  },
);

const ServiceFallback = Type.Object(
  {
    name: ServiceName("Name of the fallback Service, in the policy's namespace."),
    port: Port("The fallback Service's port (spec.ports[].port)."),
  },
  { description: "Another Service in the same namespace." },
);

const ExternalFallback = Type.Object(
  {
    host: Type.String({
      description: "DNS name or IP address of the external backend, e.g. api.backup.example.",
      minLength: 1,
      maxLength: 253,
      pattern: "^[A-Za-z0-9]([-A-Za-z0-9.:]*[A-Za-z0-9])?$",
    }),
    port: Port("Port of the external backend."),
    tls: Type.Optional(
      Type.Boolean({ description: "Speak TLS to the backend. Defaults to true when port is 443, else false." }),
    ),
    sni: Type.Optional(
      Type.String({
        description: "TLS server name sent to the backend. Defaults to host.",
        minLength: 1,
        maxLength: 253,
      }),
    ),
    hostRewrite: Type.Boolean({
      description:
        "Send the backend its own name as the Host header. Default true: external APIs route and authorise by Host.",
      default: true,
    }),
    auth: Type.Optional(
      Type.Object(
        {
          secretRef: Type.Object(
            {
              name: Type.String({
                description:
                  'Secret in the policy\'s namespace, labelled fallback.dev/credential: "true" (the operator watches only those).',
                minLength: 1,
                maxLength: 253,
              }),
              key: Type.String({
                description: "Key in the Secret's data holding the credential.",
                minLength: 1,
                maxLength: 253,
              }),
            },
            { description: "Where the credential is." },
          ),
          header: Type.String({
            description: "Header the credential goes in. Default Authorization.",
            default: "Authorization",
            minLength: 1,
            maxLength: 256,
            pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
          }),
          prefix: Type.Optional(
            Type.String({
              description:
                'Text before the credential in the header. Default "Bearer " for Authorization, none for any other header.',
              maxLength: 64,
            }),
          ),
        },
        {
          description:
            "This backend's own credential, sent to Envoy over SDS only: never in a ConfigMap, a status, an Event or a log line.",
        },
      ),
    ),
    rewrite: Type.Optional(
      Type.Object(
        {
          pathPrefix: Type.Optional(
            Type.Object(
              {
                from: Type.String({
                  description: "Leading path segment(s) to replace, e.g. /v1.",
                  pattern: "^/[!-~]*$",
                  maxLength: 1024,
                }),
                to: Type.String({
                  description: "What replaces them, e.g. /v1beta/openai.",
                  pattern: "^/[!-~]*$",
                  maxLength: 1024,
                }),
              },
              {
                description: "Replaces a leading path prefix (whole segments: /v1 matches /v1 and /v1/..., not /v10).",
              },
            ),
          ),
          model: Type.Optional(
            Type.String({
              description: 'JSON request bodies: the top-level "model" becomes this; other bodies pass untouched.',
              minLength: 1,
              maxLength: 256,
            }),
          ),
        },
        { description: "How requests are changed for this backend." },
      ),
    ),
    forwardClientCredentials: Type.Boolean({
      description:
        "Send the client's Authorization, Proxy-Authorization and Cookie headers to this backend. Default false: a client's credentials for the in-cluster Service never reach a third party.",
      default: false,
    }),
    ejectOnRateLimit: Type.Boolean({
      description:
        "Count this backend's 429 answers as failures for outlier detection (as a 503), so that a rate-limited provider is ejected for a while (baseEjectionTime) and requests go straight to the next backend. Default false: a 429 is the backend's answer, retried only by retriableStatusCodes.",
      default: false,
    }),
  },
  { description: "A backend outside the cluster, such as a backup API or an AI provider, resolved by DNS." },
);

const StaticResponse = Type.Object(
  {
    status: Type.Integer({
      description: "HTTP status of the degraded answer. Default 503: clients and caches treat it as temporary.",
      minimum: 200,
      maximum: 599,
      default: 503,
    }),
    body: Type.String({ description: "Body of the degraded answer.", maxLength: 4096, default: "" }),
    headers: Type.Optional(
      Type.Unsafe<Record<string, string>>({
        type: "object",
        description: "Headers of the degraded answer, e.g. content-type and retry-after.",
        maxProperties: 16,
        additionalProperties: { type: "string", maxLength: 1024 },
      }),
    ),
  },
  {
    description:
      "A fixed degraded answer from Envoy itself, served when every backend before it fails. Only allowed last.",
  },
);

const Fallback = Type.Object(
  {
    service: Type.Optional(ServiceFallback),
    external: Type.Optional(ExternalFallback),
    staticResponse: Type.Optional(StaticResponse),
  },
  {
    description: "One fallback backend: exactly one of service, external or staticResponse.",
    ...rules({
      rule: "[has(self.service), has(self.external), has(self.staticResponse)].filter(x, x).size() == 1",
      message: "exactly one of service, external or staticResponse must be set",
    }),
  },
);

export const RETRY_ON = [
  "5xx",
  "gateway-error",
  "reset",
  "connect-failure",
  "refused-stream",
  "retriable-4xx",
  "retriable-status-codes",
  "envoy-ratelimited",
] as const;

const Retry = Type.Object(
  {
    attempts: Type.Integer({
      description:
        "Retries after the first try; 0 disables retries. Default 2: with fallbackOnRetry, reaches two fallbacks in one request.",
      minimum: 0,
      maximum: 10,
      default: 2,
    }),
    perTryTimeout: Duration(
      "Time limit of one try. Default 1s: a stalled backend hands over well inside the request timeout.",
      "1s",
    ),
    retryOn: Type.Array(Type.String({ enum: [...RETRY_ON] }), {
      description:
        "Failures that trigger a retry. Default: connect-failure, refused-stream, reset, gateway-error — a dead, refusing or failing backend, never a client error.",
      maxItems: RETRY_ON.length,
      uniqueItems: true,
      default: ["connect-failure", "refused-stream", "reset", "gateway-error"],
    }),
    retriableStatusCodes: Type.Optional(
      Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), {
        description: "Extra status codes to retry; requires retriable-status-codes in retryOn.",
        maxItems: 16,
        uniqueItems: true,
      }),
    ),
    backoff: Type.Object(
      {
        baseInterval: Duration(
          "First retry delay, doubled each retry. Default 25ms: quick enough to be invisible.",
          "25ms",
        ),
        maxInterval: Duration("Upper bound of the retry delay. Default 250ms.", "250ms"),
      },
      {
        description: "Jittered exponential back-off between retries.",
        default: {},
        ...rules({
          rule: "duration(self.maxInterval) >= duration(self.baseInterval)",
          message: "maxInterval must not be shorter than baseInterval",
          fieldPath: ".maxInterval",
        }),
      },
    ),
    budget: Type.Optional(
      Type.Object(
        {
          percent: Type.Number({
            description: "Retries allowed as a share of active requests. Default 20.",
            minimum: 0,
            maximum: 100,
            default: 20,
          }),
          minConcurrency: Type.Integer({
            description: "Retries always allowed regardless of percent. Default 3.",
            minimum: 0,
            default: 3,
          }),
        },
        {
          description:
            "Retry budget: bounds retries to a share of traffic. When set, it replaces circuitBreaker.maxRetries.",
        },
      ),
    ),
    fallbackOnRetry: Type.Boolean({
      description: "Send each retry to the next backend instead of the one that just failed. Default true.",
      default: true,
    }),
  },
  {
    description: "How a failed request is retried.",
    default: {},
    ...rules({
      rule: "!has(self.retriableStatusCodes) || size(self.retriableStatusCodes) == 0 || 'retriable-status-codes' in self.retryOn",
      message: "retriableStatusCodes requires retriable-status-codes in retryOn",
      fieldPath: ".retriableStatusCodes",
    }),
  },
);

const OutlierDetection = Type.Object(
  {
    consecutive5xx: Type.Integer({
      description:
        "5xx answers (and, unless split, connection failures) in a row that eject a host. Default 3: quick, yet not on one blip.",
      minimum: 1,
      default: 3,
    }),
    consecutiveGatewayErrors: Type.Integer({
      description: "502, 503 or 504 answers in a row that eject a host. Default 3.",
      minimum: 1,
      default: 3,
    }),
    consecutiveLocalOriginFailures: Type.Integer({
      description:
        "Connection failures, timeouts and resets in a row that eject a host (used when splitExternalLocalOriginErrors). Default 3.",
      minimum: 1,
      default: 3,
    }),
    splitExternalLocalOriginErrors: Type.Boolean({
      description:
        "Count connection failures apart from answers from the backend. Default false: both count as errors.",
      default: false,
    }),
    interval: Duration("How often ejections are reconsidered. Default 1s: a recovered host returns promptly.", "1s"),
    baseEjectionTime: Duration(
      "Ejection time of a host, multiplied by how often it was ejected. Default 10s: short enough for quick return.",
      "10s",
    ),
    maxEjectionTime: Duration("Upper bound of the ejection time. Default 300s.", "300s"),
    maxEjectionPercent: Type.Integer({
      description:
        "Share of a backend's hosts that may be ejected. Default 100: a fully failed backend must be skippable.",
      minimum: 0,
      maximum: 100,
      default: 100,
    }),
    failurePercentage: Type.Optional(
      Type.Object(
        {
          threshold: Type.Integer({
            description: "Failure percentage that ejects a host. Default 85.",
            minimum: 0,
            maximum: 100,
            default: 85,
          }),
          minimumHosts: Type.Integer({
            description: "Hosts needed before this applies. Default 5.",
            minimum: 0,
            default: 5,
          }),
          requestVolume: Type.Integer({
            description: "Requests per interval a host needs before this applies. Default 50.",
            minimum: 0,
            default: 50,
          }),
        },
        { description: "Eject hosts whose failure rate passes a threshold." },
      ),
    ),
  },
  {
    description:
      "How failing hosts are detected and taken out of rotation (Envoy outlier detection), on every backend.",
    default: {},
    ...rules({
      rule: "duration(self.maxEjectionTime) >= duration(self.baseEjectionTime)",
      message: "maxEjectionTime must not be shorter than baseEjectionTime",
      fieldPath: ".maxEjectionTime",
    }),
  },
);

const limit = (description: string, def: number) =>
  Type.Integer({ description, minimum: 0, maximum: 1_000_000, default: def });

const CircuitBreaker = Type.Object(
  {
    maxConnections: limit("Connections to one backend. Default 1024, Envoy's own.", 1024),
    maxPendingRequests: limit("Requests waiting for a connection. Default 1024, Envoy's own.", 1024),
    maxRequests: limit("Requests in flight to one backend. Default 1024, Envoy's own.", 1024),
    maxRetries: limit(
      "Retries in flight to one backend. Default 64: a busy primary can fail over in one step (Envoy's 3 would turn retries into errors).",
      64,
    ),
  },
  {
    description: "Limits that protect each backend from overload, on every backend and the fallback chain.",
    default: {},
  },
);

const Timeouts = Type.Object(
  {
    request: Duration("Whole-request limit, retries included. Default 15s.", "15s"),
    connect: Duration("Time to open a connection to a backend. Default 1s: a dead host is noticed fast.", "1s"),
    idle: Duration("How long an unused backend connection is kept. Default 1h, Envoy's own.", "1h"),
  },
  { description: "Time limits.", default: {} },
);

const HealthCheck = Type.Object(
  {
    path: Type.String({
      description:
        "Path of the HTTP GET each check sends. Default /healthz. An answer from 200 to 399 is healthy, as for a kubelet probe, so the check a Deployment already has works here.",
      pattern: "^/[!-~]*$",
      maxLength: 1024,
      default: "/healthz",
    }),
    interval: Duration(
      "Time between two checks of a host, also while the backend gets no traffic (an idle fallback must be known good). Default 5s.",
      "5s",
    ),
    timeout: Duration("Time a check waits for its answer before it counts as failed. Default 1s.", "1s"),
    unhealthyThreshold: Type.Integer({
      description:
        "Failed checks in a row that take a host out of rotation. Default 2: one lost check is not an outage.",
      minimum: 1,
      maximum: 100,
      default: 2,
    }),
    healthyThreshold: Type.Integer({
      description:
        "Passed checks in a row that bring a host back. Default 1: a host that answers again serves again at once.",
      minimum: 1,
      maximum: 100,
      default: 1,
    }),
  },
  {
    description:
      "Active HTTP health checks on every Service backend (primary and service fallbacks; not external ones): a host whose check fails gets no traffic, even while it accepts connections. Absent: hosts are judged by outlier detection only.",
    ...rules(
      {
        rule: "duration(self.interval) > duration('0s')",
        message: "interval must be longer than 0s",
        fieldPath: ".interval",
      },
      {
        rule: "duration(self.timeout) > duration('0s')",
        message: "timeout must be longer than 0s",
        fieldPath: ".timeout",
      },
    ),
  },
);

// A drain name is a backend of the policy as status.backends names it: a Service by its
// name, an external backend by its host. (CEL has no functions of its own: written out twice.)
const isBackendName = (name: string) =>
  `${name} == self.targetRef.name || self.fallbacks.exists(f, (has(f.service) && f.service.name == ${name}) || (has(f.external) && f.external.host == ${name}))`;

export const FallbackPolicySpec = Type.Object(
  {
    targetRef: TargetRef,
    fallbacks: Type.Array(Fallback, {
      description: "Ordered fallback backends: traffic moves to the next when all before it fail. 1 to 8 entries.",
      minItems: 1,
      maxItems: 8,
      ...rules({
        rule: "self.filter(f, has(f.staticResponse)).size() == 0 || (self.filter(f, has(f.staticResponse)).size() == 1 && self.map(f, has(f.staticResponse))[size(self) - 1])",
        message: "staticResponse is only allowed as the last fallback",
      }),
    }),
    retry: Retry,
    outlierDetection: OutlierDetection,
    circuitBreaker: CircuitBreaker,
    timeouts: Timeouts,
    drain: Type.Optional(
      Type.Array(
        Type.String({ description: "A backend's name, as status.backends has it.", minLength: 1, maxLength: 253 }),
        {
          description:
            "Backends out of rotation now (maintenance, game days), by their name in status.backends: a Service's name or an external host. Requests in flight finish; new ones go to the next backend. The static response cannot be drained.",
          maxItems: 9,
          uniqueItems: true,
        },
      ),
    ),
    healthCheck: Type.Optional(HealthCheck),
  },
  {
    description: "What to protect and how to fall back.",
    ...rules(
      {
        rule: "self.fallbacks.all(f, !has(f.service) || f.service.name != self.targetRef.name || f.service.port != self.targetRef.port)",
        message: "a fallback cannot be the target Service port itself",
        fieldPath: ".fallbacks",
      },
      {
        // "static" gets its own rule and message (below), unless a backend is called so.
        rule: `!has(self.drain) || self.drain.all(d, d == 'static' || ${isBackendName("d")})`,
        message:
          "each drain name must be a backend of this policy: targetRef.name, a fallback's service.name or an external fallback's host",
        fieldPath: ".drain",
      },
      {
        rule: `!has(self.drain) || !('static' in self.drain) || ${isBackendName("'static'")}`,
        message:
          "the static response cannot be drained: it is the answer of last resort when every backend before it is down or drained",
        fieldPath: ".drain",
      },
    ),
  },
);

const Condition = Type.Object(
  {
    type: Type.String({ description: "Accepted, ResolvedRefs, Programmed, Ready or Stalled.", maxLength: 316 }),
    status: Type.String({ description: "True, False or Unknown.", enum: ["True", "False", "Unknown"] }),
    observedGeneration: Type.Optional(
      Type.Integer({ description: "The generation this condition was set for.", minimum: 0 }),
    ),
    lastTransitionTime: Type.String({ description: "When status last changed.", format: "date-time" }),
    reason: Type.String({ description: "CamelCase reason.", maxLength: 1024 }),
    message: Type.String({ description: "Human-readable detail.", maxLength: 32768 }),
  },
  { description: "A metav1.Condition." },
);

const BackendStatus = Type.Object(
  {
    name: Type.String({ description: "Service name, external host, or static for the degraded answer." }),
    kind: Type.String({
      description: "Service, External or StaticResponse.",
      enum: ["Service", "External", "StaticResponse"],
    }),
    endpoints: Type.Optional(
      Type.Integer({
        description: "Ready endpoints found in EndpointSlices; absent when resolved by DNS.",
        minimum: 0,
      }),
    ),
    resolution: Type.Optional(
      Type.String({ description: "EndpointSlices, DNS or Static.", enum: ["EndpointSlices", "DNS", "Static"] }),
    ),
    drained: Type.Boolean({
      description: "Whether spec.drain takes this backend out of rotation; always false for the static response.",
      default: false,
    }),
    healthy: Type.Optional(
      Type.Integer({
        description:
          "Healthy endpoints as the Envoys report them (the most any one Envoy sees: neither ejected by outlier detection, failing health checks nor drained); absent without reports.",
        minimum: 0,
      }),
    ),
  },
  { description: "What one backend resolved to, and how the Envoys see it." },
);

export const FallbackPolicyStatus = Type.Object(
  {
    observedGeneration: Type.Optional(
      Type.Integer({ description: "The generation the operator last acted on.", minimum: 0 }),
    ),
    conditions: Type.Optional(
      Type.Array(Condition, {
        description:
          "Accepted, ResolvedRefs, Programmed and Ready; Ready is True only when the other three are. Stalled, there only while True, when the policy cannot progress until its author changes it (Accepted=False: Invalid or Conflicted); kstatus, and so Flux, then reports it Failed.",
        maxItems: 8,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
      }),
    ),
    backends: Type.Optional(
      Type.Array(BackendStatus, { description: "What each backend resolved to, primary first.", maxItems: 9 }),
    ),
    fallbackCount: Type.Optional(Type.Integer({ description: "Number of fallbacks in the spec.", minimum: 0 })),
    activeBackend: Type.Optional(
      Type.String({
        description:
          "The backend that serves new requests now (status.backends name), from the Envoys' own stats; absent without reports. FallbackActive says why.",
      }),
    ),
    configRef: Type.Optional(
      Type.Object(
        {
          namespace: Type.Optional(
            Type.String({
              description: "Namespace of the ConfigMap holding the Envoy config, when the operator writes one.",
            }),
          ),
          name: Type.Optional(Type.String({ description: "Name of that ConfigMap." })),
          hash: Type.String({
            description:
              "sha256 of this policy's part of the Envoy config (its route and clusters); it changes exactly when what Envoy does for this policy changes.",
          }),
        },
        { description: "The compiled Envoy config this policy is part of." },
      ),
    ),
    proxies: Type.Optional(
      Type.Object(
        {
          connected: Type.Integer({ description: "Envoys connected to the operator over xDS.", minimum: 0 }),
          acked: Type.Integer({
            description: "Of those, how many acknowledged this policy's current resources.",
            minimum: 0,
          }),
        },
        {
          description:
            "The Envoys the operator serves over xDS, and how many run this policy's current config; absent without the xDS server.",
        },
      ),
    ),
  },
  { description: "What the operator observed and did." },
);

// Makes every defaulted property optional (see the header comment), closes objects that
// declare properties (the offline validator then rejects unknown fields, as kubectl's strict
// field validation does), and spells out object defaults in full: the API server checks a
// default against the CEL rules before filling in the defaults nested inside it.
function finalize<T extends TSchema>(schema: T): T {
  const visit = (node: any): void => {
    if (!node || typeof node !== "object") return;
    if (node.type === "object" && node.properties) {
      Object.values(node.properties).forEach(visit);
      if (node.default && typeof node.default === "object") {
        for (const [key, child] of Object.entries<any>(node.properties)) {
          if (child.default !== undefined && node.default[key] === undefined)
            node.default[key] = structuredClone(child.default);
        }
      }
      if (Array.isArray(node.required)) {
        node.required = node.required.filter((key: string) => !("default" in node.properties[key]));
        if (node.required.length === 0) delete node.required;
      }
      node.additionalProperties ??= false;
    }
    if (node.items) visit(node.items);
    if (node.additionalProperties && typeof node.additionalProperties === "object") visit(node.additionalProperties);
  };
  visit(schema);
  return schema;
}

export const specSchema = finalize(FallbackPolicySpec);
export const statusSchema = finalize(FallbackPolicyStatus);

export type FallbackPolicySpec = Static<typeof FallbackPolicySpec>;
export type FallbackPolicyStatus = Static<typeof FallbackPolicyStatus>;
export type Fallback = FallbackPolicySpec["fallbacks"][number];
export type Condition = Static<typeof Condition>;
export type BackendStatus = Static<typeof BackendStatus>;

export type ObjectMeta = {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
};

export type FallbackPolicy = {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: ObjectMeta;
  spec: FallbackPolicySpec;
  status?: FallbackPolicyStatus;
};
