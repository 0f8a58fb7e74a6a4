// Runs the CRD's CEL rules (x-kubernetes-validations) offline, with the same expressions
// the API server evaluates, so `fallbackctl validate` and the cluster reject the same objects.
import { parse } from "@marcbachmann/cel-js";
import { joinPath, type FieldError } from "./path.ts";

type Rule = { rule: string; message: string; fieldPath?: string };
type SchemaNode = {
  "x-kubernetes-validations"?: Rule[];
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
};

const compiled = new Map<string, ReturnType<typeof parse>>();
const program = (rule: string) => {
  let p = compiled.get(rule);
  if (!p) compiled.set(rule, (p = parse(rule)));
  return p;
};

/** Evaluates every rule of `schema` against `value` (already schema-valid and defaulted). */
export function checkRules(schema: object, value: unknown, path: string): FieldError[] {
  return checkNode(schema as SchemaNode, value, path);
}

function checkNode(schema: SchemaNode, value: unknown, path: string): FieldError[] {
  const errors: FieldError[] = [];
  for (const rule of schema["x-kubernetes-validations"] ?? []) {
    let ok: unknown;
    try {
      ok = program(rule.rule)({ self: value });
    } catch {
      ok = false;
    }
    if (ok !== true) errors.push({ path: path + (rule.fieldPath ?? ""), message: rule.message });
  }
  if (schema.properties && value && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, child] of Object.entries(schema.properties)) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) errors.push(...checkNode(child, v, joinPath(path, key)));
    }
  }
  if (schema.items && Array.isArray(value)) {
    value.forEach((item, i) => errors.push(...checkNode(schema.items!, item, `${path}[${i}]`)));
  }
  return errors;
}
