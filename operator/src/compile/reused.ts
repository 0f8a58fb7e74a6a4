// Envoy objects the compiler hands out again, the very same, from one compile to the next
// (the operator's syncs; see compile.ts). emit.ts remembers the JSON text of these, and
// of nothing else: a one-off compile's objects are written once and let go.
export const reusedObjects = new WeakSet<object>();
