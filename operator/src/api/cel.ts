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
  const errors: FieldError[] = [];
  checkNode(schema as SchemaNode, value, () => path, errors);
  return errors;
}

// Most of the schema has no rules below it; those parts are not walked. The path of a field
// is only spelled out when one of its rules fails.
const hasRules = new WeakMap<SchemaNode, boolean>();
function rulesBelow(schema: SchemaNode): boolean {
  let has = hasRules.get(schema);
  if (has === undefined) {
    has =
      Boolean(schema["x-kubernetes-validations"]?.length) ||
      Object.values(schema.properties ?? {}).some(rulesBelow) ||
      (schema.items !== undefined && rulesBelow(schema.items));
    hasRules.set(schema, has);
  }
  return has;
}

function checkNode(schema: SchemaNode, value: unknown, path: () => string, errors: FieldError[]): void {
  if (!rulesBelow(schema)) return;
  for (const rule of schema["x-kubernetes-validations"] ?? []) {
    let ok: unknown;
    try {
      ok = program(rule.rule)({ self: value });
    } catch {
      ok = false;
    }
    if (ok !== true) errors.push({ path: path() + (rule.fieldPath ?? ""), message: rule.message });
  }
  if (schema.properties && value && typeof value === "object" && !Array.isArray(value)) {
    for (const key in schema.properties) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) checkNode(schema.properties[key]!, v, () => joinPath(path(), key), errors);
    }
  }
  if (schema.items && Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) checkNode(schema.items, value[i], () => `${path()}[${i}]`, errors);
  }
}
