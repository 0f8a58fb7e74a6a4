// What client-node's KubeConfig module takes from the generated index, and nothing else;
// lean.ts explains why.

export { createConfiguration } from "@kubernetes/client-node/dist/gen/configuration.js";
export { ServerConfiguration } from "@kubernetes/client-node/dist/gen/servers.js";
