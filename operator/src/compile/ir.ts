// The proxy-neutral model of what each policy means: backends in order, with their
// endpoints, and how requests are retried, ejected and limited. Durations are milliseconds.

export type Endpoint = { address: string; port: number };

export type ServiceBackend = {
  kind: "Service";
  name: string;
  namespace: string;
  /** EndpointSlices: `endpoints` are the ready ones. DNS: `host`/`port` name the Service. */
  resolution: "EndpointSlices" | "DNS";
  endpoints: Endpoint[];
  host: string;
  port: number;
  /** Out of rotation (spec.drain): its hosts are there, draining, so requests in flight finish. */
  drained: boolean;
};

export type ExternalBackend = {
  kind: "External";
  host: string;
  port: number;
  tls: boolean;
  sni: string;
  hostRewrite: boolean;
  drained: boolean;
  /**
   * The backend's own credential, by the name of the SDS secret that holds it (never the
   * credential itself: the IR is hashed, compared and logged); "missing" when its Secret or
   * key is not there, and the backend is left out (no endpoints) until it is.
   */
  auth?: { secret: string; header: string; prefix: string } | "missing";
  rewrite?: { pathPrefix?: { from: string; to: string }; model?: string };
  forwardClientCredentials: boolean;
  /** The backend's 429 answers count for outlier detection (the internal listener answers 503 for them). */
  ejectOnRateLimit?: true;
};

export type StaticBackend = {
  kind: "StaticResponse";
  status: number;
  body: string;
  headers: [string, string][];
};

export type Backend = ServiceBackend | ExternalBackend | StaticBackend;

export type RetryIR = {
  attempts: number;
  perTryTimeoutMs: number;
  retryOn: string[];
  retriableStatusCodes: number[];
  backoff: { baseMs: number; maxMs: number };
  budget?: { percent: number; minConcurrency: number };
  fallbackOnRetry: boolean;
};

export type EjectionIR = {
  consecutive5xx: number;
  consecutiveGatewayErrors: number;
  consecutiveLocalOriginFailures: number;
  splitExternalLocalOriginErrors: boolean;
  intervalMs: number;
  baseEjectionMs: number;
  maxEjectionMs: number;
  maxEjectionPercent: number;
  failurePercentage?: { threshold: number; minimumHosts: number; requestVolume: number };
};

/** Active HTTP health checks of the Service backends. */
export type HealthCheckIR = {
  path: string;
  intervalMs: number;
  timeoutMs: number;
  unhealthyThreshold: number;
  healthyThreshold: number;
};

export type LimitsIR = { maxConnections: number; maxPendingRequests: number; maxRequests: number; maxRetries: number };

export type PolicyIR = {
  /** namespace/name of the policy. */
  key: string;
  /** Host names (with and without port) that reach this policy's virtual host. */
  domains: string[];
  /** Primary first, then the fallbacks in order. */
  backends: Backend[];
  retry: RetryIR;
  ejection: EjectionIR;
  limits: LimitsIR;
  timeouts: { requestMs: number; connectMs: number; idleMs: number };
  /** Absent: no active health checks (spec.healthCheck unset). */
  healthCheck?: HealthCheckIR;
};
