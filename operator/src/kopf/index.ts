// kopf: a small operator framework with kopf's ergonomics on controller-runtime's
// engine. It knows nothing about any product; see README.md for the tour.

export { Operator, type OperatorOptions } from "./operator.ts";
export { HttpMethod, KubeConfig } from "./kube.ts";
export { Handler, type HandlerOptions } from "./handler.ts";
export {
  generationChanged,
  resourceId,
  watchedResource,
  type ResourceSpec,
  type Watch,
  type WatchSpec,
} from "./resource.ts";
export {
  KubeClient,
  apiVersionOf,
  objectKey,
  parseKey,
  resourceName,
  resourcePath,
  type KubeObject,
  type ObjectList,
  type ObjectMeta,
  type PatchOptions,
  type PatchType,
  type ResourceRef,
} from "./client.ts";
export { describe as describeError, isConflict, isGone, isNotFound, isRetryable, statusCode } from "./errors.ts";
export { Store, type StoreOptions } from "./store.ts";
export { Informer, type InformerEvent, type InformerEventType, type InformerOptions } from "./informer.ts";
export { WorkQueue, type WorkQueueOptions } from "./workqueue.ts";
export { Backoff, KeyedBackoff, backoffDelay, sleep, type BackoffOptions } from "./backoff.ts";
export {
  findCondition,
  formatTime,
  isConditionTrue,
  removeCondition,
  setCondition,
  type Condition,
  type ConditionInput,
  type ConditionStatus,
} from "./conditions.ts";
export { patchStatus, statusMatches, type StatusWriteOptions } from "./status.ts";
export { EventRecorder, type EventRecorderOptions, type EventType } from "./events.ts";
export { LeaderElector, type LeaderCallbacks, type LeaderElectionOptions } from "./leader.ts";
export { Metrics } from "./metrics.ts";
export { ProbeServer, type Check } from "./probes.ts";
export { createLogger, type Logger, type LoggerOptions } from "./log.ts";
