/**
 * Whether two lists hold the very same items in the same places (by identity, not by
 * content): how the incremental paths (compiler, encoder, xDS server) tell that nothing
 * changed without looking inside.
 */
export const sameItems = <T>(a: readonly T[], b: readonly T[]): boolean =>
  a === b || (a.length === b.length && a.every((x, i) => x === b[i]));
