// Field paths in the form Kubernetes prints them: spec.fallbacks[0].service.port.

export type FieldError = { path: string; message: string };

export const joinPath = (path: string, key: string) => (path ? `${path}.${key}` : key);

/** `/spec/fallbacks/0/service` (a JSON pointer, as ajv reports) to `spec.fallbacks[0].service`. */
export function fromPointer(pointer: string): string {
  return pointer
    .split("/")
    .slice(1)
    .map((part) => part.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((path, part) => (/^\d+$/.test(part) ? `${path}[${part}]` : joinPath(path, part)), "");
}
