// The CustomResourceDefinition, derived from the schema. crds/ holds its YAML; a test fails
// when the file drifts from this.
import { stringify } from "yaml";
import { GROUP, KIND, PLURAL, VERSION, specSchema, statusSchema } from "./schema.ts";

// A structural schema (what the API server requires) says unknown fields are pruned rather
// than forbidden, and sets instead of uniqueItems; everything else carries over as it is.
function structural(schema: unknown): any {
  return JSON.parse(JSON.stringify(schema), (key, value) => {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      const { additionalProperties, uniqueItems, ...rest } = value;
      if (additionalProperties !== undefined && additionalProperties !== false)
        rest.additionalProperties = additionalProperties;
      if (uniqueItems === true) rest["x-kubernetes-list-type"] = "set";
      return rest;
    }
    return value;
  });
}

const readyColumn = (name: string, field: string) => ({
  name,
  type: "string",
  jsonPath: `.status.conditions[?(@.type=="Ready")].${field}`,
});

export function customResourceDefinition() {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${PLURAL}.${GROUP}` },
    spec: {
      group: GROUP,
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: PLURAL,
        singular: KIND.toLowerCase(),
        shortNames: ["fbp"],
        categories: ["fallback"],
      },
      scope: "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: "Target", type: "string", jsonPath: ".spec.targetRef.name" },
            { name: "Fallbacks", type: "integer", jsonPath: ".status.fallbackCount" },
            readyColumn("Ready", "status"),
            readyColumn("Reason", "reason"),
            { name: "Active", type: "string", jsonPath: ".status.activeBackend" },
            { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
          ],
          schema: {
            openAPIV3Schema: {
              type: "object",
              description:
                "FallbackPolicy sends a Service's traffic to ordered fallback backends when it fails, through Envoy.",
              required: ["spec"],
              properties: {
                apiVersion: { type: "string", description: "Versioned schema of this object: fallback.dev/v1alpha1." },
                kind: { type: "string", description: "FallbackPolicy." },
                metadata: { type: "object" },
                spec: structural(specSchema),
                status: structural(statusSchema),
              },
            },
          },
        },
      ],
    },
  };
}

export const crdYaml = () =>
  "# Generated from operator/src/api/schema.ts by `make crds`; do not edit.\n" +
  stringify(customResourceDefinition(), { lineWidth: 0 });
