// YAML handed to a tool: the manifests a GitOps repository holds (FallbackPolicy, Service,
// discovery.k8s.io/v1 EndpointSlice), as multi-document YAML, read as fallbackctl reads a
// file. A syntax error is reported with its document, line and column.
import { parseAllDocuments } from "yaml";
import { ToolError } from "./errors.ts";

/** The objects of a multi-document YAML text; a List's items are objects of their own. */
export function parseManifests(text: string, field = "yaml"): unknown[] {
  if (!text.trim())
    throw new ToolError(`${field}: empty; give one or more YAML documents (FallbackPolicy, Service, EndpointSlice)`, [
      { field, message: "empty" },
    ]);
  const objects: unknown[] = [];
  let index = 0;
  for (const doc of parseAllDocuments(text)) {
    index++;
    const error = doc.errors[0];
    if (error) {
      const at = error.linePos?.[0];
      const where = at ? `line ${at.line}, column ${at.col}` : `document ${index}`;
      const message = error.message.split("\n")[0]!;
      throw new ToolError(`${field}: ${where}: ${message}`, [{ field, message: `${where}: ${message}` }]);
    }
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    if (typeof value !== "object" || Array.isArray(value)) {
      const message = `document ${index} is ${Array.isArray(value) ? "a list" : `the ${typeof value} ${JSON.stringify(value).slice(0, 40)}`}, not a Kubernetes object`;
      throw new ToolError(`${field}: ${message}`, [{ field, message }]);
    }
    const object = value as { kind?: unknown; items?: unknown };
    if (object.kind === "List" && Array.isArray(object.items)) objects.push(...object.items);
    else objects.push(value);
  }
  return objects;
}

/** `FallbackPolicy shop/products`, `v1/ConfigMap default/x`: how an object is named in messages. */
export function describeObject(object: unknown): string {
  const { apiVersion, kind, metadata } = (object ?? {}) as {
    apiVersion?: unknown;
    kind?: unknown;
    metadata?: { name?: unknown; namespace?: unknown };
  };
  const name = `${typeof metadata?.namespace === "string" ? metadata.namespace : "default"}/${typeof metadata?.name === "string" ? metadata.name : "<unnamed>"}`;
  if (kind === "FallbackPolicy") return `FallbackPolicy ${name}`;
  return `${typeof apiVersion === "string" ? `${apiVersion}/` : ""}${typeof kind === "string" ? kind : "<no kind>"} ${name}`;
}
