// The one door to @kubernetes/client-node. Each name comes from the module that defines
// it, never from the package index: the index loads every generated API class and model
// (~1,000 modules, ~40 MB of a running process) and the framework uses none of them.
// A lint rule keeps every other file from importing client-node directly.

export { KubeConfig } from "@kubernetes/client-node/dist/config.js";
export { Watch } from "@kubernetes/client-node/dist/watch.js";
export { HttpMethod, type RequestContext } from "@kubernetes/client-node/dist/gen/http/http.js";
export type { Configuration } from "@kubernetes/client-node/dist/gen/configuration.js";
export { ApiException } from "@kubernetes/client-node/dist/gen/apis/exception.js";
export { PatchStrategy } from "@kubernetes/client-node/dist/patch.js";
export { V1MicroTime } from "@kubernetes/client-node/dist/types.js";
