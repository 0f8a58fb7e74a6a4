// Keeps client-node's generated index out of the process.
//
// KubeConfig's module (dist/config.js) imports two names, createConfiguration and
// ServerConfiguration, from ./gen/index.js, and that index loads every generated API class
// and model: ~1,000 modules and ~40 MB of a running operator, for names the framework never
// uses (kube.ts imports the rest from their own modules). A resolve hook points that one
// import at lean-gen.ts, which re-exports the two names from where they are defined.
//
// Call it before anything imports client-node: hooks do not reach modules already loaded.
// Without it everything works the same, only heavier (tests that import the framework
// in-process run that way).

import { registerHooks } from "node:module";

const KUBE_CONFIG_MODULE = "/@kubernetes/client-node/dist/config.js";
const GEN_SUBSET = new URL("./lean-gen.ts", import.meta.url).href;

export function keepClientNodeLean(): void {
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const fromKubeConfig = specifier === "./gen/index.js" && context.parentURL?.endsWith(KUBE_CONFIG_MODULE);
      return nextResolve(fromKubeConfig ? GEN_SUBSET : specifier, context);
    },
  });
}
