// The MCP server: which tools exist, their input schemas and hints, and the one way every
// tool answers (text for a person, structuredContent for a program, isError with the
// object and field on failure). The tools themselves are in offline.ts, explain.ts,
// simulate.ts, cluster.ts and writes.ts. The tool names are fixed in api.md.
import { McpServer, type CallToolResult, type ToolAnnotations } from "@modelcontextprotocol/server";
import * as z from "zod/v4";
import { describeDetail, describeList, getPolicy, listPolicies, type Cluster } from "./cluster.ts";
import { messageOf, ToolError } from "./errors.ts";
import { describeExplanation, explain } from "./explain.ts";
import { parseManifests } from "./manifests.ts";
import { pickPolicy } from "./model.ts";
import { describeRendering, describeValidation, renderManifests, validateManifests } from "./offline.ts";
import { describeSimulation, simulate } from "./simulate.ts";
import { applyPolicies, describeApply, describeDrain, FIELD_MANAGER, setDrain } from "./writes.ts";

export const OFFLINE_TOOLS = ["validate_policies", "render_policies", "explain_policy", "simulate_failure"] as const;
export const CLUSTER_TOOLS = ["list_policies", "get_policy"] as const;
export const WRITE_TOOLS = ["set_drain", "apply_policy"] as const;

export type ServerContext = {
  /** The caller's cluster, with --kubeconfig; without it only the offline tools exist. */
  cluster?: Cluster;
  /** --allow-writes: set_drain and apply_policy exist only then. */
  allowWrites: boolean;
  version: string;
  /** Where unexpected failures are logged in full (never sent to the client). */
  log?: (line: string) => void;
};

const READ_ONLY: ToolAnnotations = {
  readOnlyHint: true,
  destructiveHint: false,
  idempotentHint: true,
  openWorldHint: false,
};
const WRITES: ToolAnnotations = {
  readOnlyHint: false,
  destructiveHint: true,
  idempotentHint: true,
  openWorldHint: false,
};

const yamlArg = z
  .string()
  .max(4_000_000)
  .describe(
    "Multi-document YAML: FallbackPolicy (fallback.dev/v1alpha1), Service (v1) and EndpointSlice (discovery.k8s.io/v1) objects, as a GitOps repository holds them. A kubectl List works too.",
  );
const policyArg = z
  .string()
  .regex(/^([a-z0-9][-a-z0-9.]*\/)?[a-z0-9][-a-z0-9.]*$/, "namespace/name")
  .optional()
  .describe(
    "The policy, as namespace/name (a bare name means namespace default). Optional when the YAML holds one policy.",
  );
const backendNames = z.array(z.string().min(1)).max(9);

export function createServer(ctx: ServerContext): McpServer {
  const server = new McpServer(
    { name: "fallbackctl", version: ctx.version, title: "fallback-operator" },
    { instructions: instructions(ctx) },
  );
  const tool =
    <T>(run: (args: T) => Promise<{ text: string; data: object }> | { text: string; data: object }) =>
    async (args: T): Promise<CallToolResult> => {
      try {
        const { text, data } = await run(args);
        return { content: [{ type: "text", text }], structuredContent: data as Record<string, unknown> };
      } catch (error) {
        if (!(error instanceof ToolError))
          ctx.log?.(
            `fallbackctl mcp: unexpected failure: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
          );
        const message = messageOf(error);
        const problems = error instanceof ToolError && error.problems.length ? error.problems : [{ message }];
        return {
          content: [{ type: "text", text: message }],
          structuredContent: { error: { message, problems } },
          isError: true,
        };
      }
    };

  // ---- offline: YAML in ----
  server.registerTool(
    "validate_policies",
    {
      title: "Validate FallbackPolicies",
      description:
        "Checks FallbackPolicies as the API server and `fallbackctl validate` do (schema, defaults, CEL rules), and resolves them against the Services in the YAML. Returns each error with its object, field and message, and warnings for valid policies in conflict or naming Services not in the input. Nothing is sent anywhere.",
      inputSchema: z.object({ yaml: yamlArg }),
      annotations: READ_ONLY,
    },
    tool(({ yaml }: { yaml: string }) => {
      const report = validateManifests(yaml);
      return { text: describeValidation(report), data: report };
    }),
  );

  server.registerTool(
    "render_policies",
    {
      title: "Render FallbackPolicies",
      description:
        "Compiles FallbackPolicies as `fallbackctl render` and the operator do, and summarises each: its chain of backends with the Envoy cluster of each, retries (tries per request, per-try timeout, what is retried, back-off), timeouts, outlier ejection, circuit breaker, health checks and drain. With envoy: true, also the Envoy resources (clusters, endpoints, listener, routes) and the bootstrap fallbackctl render prints. Input with an invalid policy renders nothing and returns its errors.",
      inputSchema: z.object({
        yaml: yamlArg,
        policy: policyArg.describe(
          "Render only this policy (namespace/name), with the Services in the YAML. Optional: all policies.",
        ),
        envoy: z
          .boolean()
          .optional()
          .describe("Also return the Envoy configuration (large). Default false: the summary only."),
      }),
      annotations: READ_ONLY,
    },
    tool(({ yaml, policy, envoy }: { yaml: string; policy?: string; envoy?: boolean }) => {
      const rendering = renderManifests(yaml, { ...(policy !== undefined ? { policy } : {}), envoy: envoy ?? false });
      return { text: describeRendering(rendering), data: rendering };
    }),
  );

  server.registerTool(
    "explain_policy",
    {
      title: "Explain a FallbackPolicy",
      description:
        "Says in plain words what a FallbackPolicy makes Envoy do, with the policy's own numbers: the order of the backends; what happens when the primary refuses connections, answers 5xx or 429, or is slow; the worst-case time a client waits until each fallback (and the static answer) answers: tries x per-try timeout + back-off, bounded by the request timeout; when the static answer is served; what outlier detection ejects and for how long; health checks and limits.",
      inputSchema: z.object({ yaml: yamlArg, policy: policyArg }),
      annotations: READ_ONLY,
    },
    tool(({ yaml, policy }: { yaml: string; policy?: string }) => {
      const explanation = explain(pickPolicy(parseManifests(yaml), policy, { offline: true }));
      return { text: describeExplanation(explanation), data: explanation };
    }),
  );

  server.registerTool(
    "simulate_failure",
    {
      title: "Simulate a failure",
      description:
        "Works out what Envoy does with requests under a failure scenario for one policy: which backend answers (or the static answer, or Envoy's own error), after how many tries, and how long the client waits; first for the first requests, then once outlier detection or health checks have taken failing backends out. Backends not named in the scenario work normally. Names are the backends' names as status.backends has them: a Service's name or an external host.",
      inputSchema: z.object({
        yaml: yamlArg,
        policy: policyArg,
        scenario: z
          .object({
            down: backendNames.optional().describe("Backends that refuse connections (crashed, nothing listening)."),
            slow: backendNames.optional().describe("Backends slower than the per-try timeout, or hanging."),
            status: z
              .record(z.string(), z.number().int().min(100).max(599))
              .optional()
              .describe('Backends answering every request with this HTTP status, e.g. {"products": 503}.'),
          })
          .describe("What fails. An empty scenario: every backend works."),
      }),
      annotations: READ_ONLY,
    },
    tool(
      ({
        yaml,
        policy,
        scenario,
      }: {
        yaml: string;
        policy?: string;
        scenario: { down?: string[]; slow?: string[]; status?: Record<string, number> };
      }) => {
        const simulation = simulate(pickPolicy(parseManifests(yaml), policy, { offline: true }), scenario);
        return { text: describeSimulation(simulation), data: simulation };
      },
    ),
  );

  // ---- a cluster: --kubeconfig ----
  const cluster = ctx.cluster;
  if (cluster) {
    server.registerTool(
      "list_policies",
      {
        title: "List FallbackPolicies",
        description:
          "Lists the FallbackPolicies in the cluster (one namespace, or all): target, fallbacks, Ready and its reason, the backend serving now (activeBackend) and FallbackActive where the Envoys report live state, drained backends, and every condition that says something is wrong.",
        inputSchema: z.object({
          namespace: z
            .string()
            .min(1)
            .optional()
            .describe("Only this namespace. Optional: every namespace the kubeconfig may list."),
        }),
        annotations: READ_ONLY,
      },
      tool(async ({ namespace }: { namespace?: string }) => {
        const listing = await listPolicies(cluster, namespace);
        return { text: describeList(listing), data: listing };
      }),
    );

    server.registerTool(
      "get_policy",
      {
        title: "Get a FallbackPolicy",
        description:
          "One FallbackPolicy from the cluster: its spec, its status (conditions, backends with their endpoints and healthy hosts, activeBackend, FallbackActive, proxies), its recent Events, and the explanation of what it makes Envoy do, resolved against its Services' EndpointSlices as they are now.",
        inputSchema: z.object({
          namespace: z.string().min(1).describe("The policy's namespace."),
          name: z.string().min(1).describe("The policy's name."),
        }),
        annotations: READ_ONLY,
      },
      tool(async ({ namespace, name }: { namespace: string; name: string }) => {
        const detail = await getPolicy(cluster, namespace, name);
        return { text: describeDetail(detail), data: detail };
      }),
    );

    // ---- writes: --allow-writes only ----
    if (ctx.allowWrites) {
      const access = { cluster, allowWrites: ctx.allowWrites };
      server.registerTool(
        "set_drain",
        {
          title: "Drain backends",
          description: `Sets spec.drain of a FallbackPolicy to exactly the backends given: they get no new requests (those in flight finish) and traffic moves to the next backend; [] brings every backend back. Moves live traffic. Sent first as a server-side dry run (returned), then for real, with field manager ${FIELD_MANAGER} and your kubeconfig's permissions; the reason is recorded as an annotation and an Event.`,
          inputSchema: z.object({
            namespace: z.string().min(1).describe("The policy's namespace."),
            name: z.string().min(1).describe("The policy's name."),
            backends: backendNames.describe(
              "The backends to drain, by name as status.backends has them (a Service's name or an external host); the static answer cannot be drained. [] undrains all.",
            ),
            reason: z
              .string()
              .min(1)
              .max(1024)
              .describe(
                "Why, in a sentence: recorded on the policy (annotation fallback.dev/change-reason) and in an Event.",
              ),
          }),
          annotations: WRITES,
        },
        tool(async (args: { namespace: string; name: string; backends: string[]; reason: string }) => {
          const change = await setDrain(access, args);
          return { text: describeDrain(change), data: change };
        }),
      );

      server.registerTool(
        "apply_policy",
        {
          title: "Apply FallbackPolicies",
          description: `Server-side applies the FallbackPolicies in the YAML (and nothing else: other kinds are refused), with field manager ${FIELD_MANAGER} and your kubeconfig's permissions. Each is validated offline, then dry-run on the API server (the result, with the fields it changes, is returned), and only when every dry run passed applied for real. The reason is recorded as an annotation and an Event.`,
          inputSchema: z.object({
            yaml: z
              .string()
              .max(4_000_000)
              .describe(
                "One or more FallbackPolicy objects as YAML; a policy without metadata.namespace goes to the kubeconfig context's namespace.",
              ),
            reason: z
              .string()
              .min(1)
              .max(1024)
              .describe(
                "Why, in a sentence: recorded on each policy (annotation fallback.dev/change-reason) and in an Event.",
              ),
            force: z
              .boolean()
              .optional()
              .describe(
                "Take over fields another field manager (kubectl, a GitOps tool) owns. Default false: such a conflict fails the dry run.",
              ),
          }),
          annotations: WRITES,
        },
        tool(async (args: { yaml: string; reason: string; force?: boolean }) => {
          const result = await applyPolicies(access, args);
          return { text: describeApply(result), data: result };
        }),
      );
    }
  }
  return server;
}

function instructions(ctx: ServerContext): string {
  const parts = [
    "fallback-operator: FallbackPolicy (fallback.dev/v1alpha1) says, for a Kubernetes Service port, which backends Envoy falls back to, in order, and how it retries and ejects.",
    "Offline tools take YAML: validate_policies, render_policies, explain_policy (what the policy does, in words and numbers) and simulate_failure (what a failure scenario does to requests).",
  ];
  if (ctx.cluster)
    parts.push(
      "list_policies and get_policy read the cluster: status, who serves now (activeBackend, FallbackActive), Events.",
    );
  if (ctx.cluster && ctx.allowWrites)
    parts.push(
      "set_drain and apply_policy change the cluster: check with simulate_failure or explain_policy first, and give a reason.",
    );
  else parts.push("This server is read-only: started without --allow-writes, it has no write tools.");
  return parts.join(" ");
}
