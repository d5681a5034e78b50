// Comparing resolved configs, for reloads: is a setting the same as before (so what was built from
// it can be kept), which fields differ (for the log), and a short hash that names a config in the
// log and on /readyz without revealing anything in it.

import { createHash } from 'node:crypto';
import type { SidecarConfig } from './types.js';

/**
 * Deep equality of config values. Plain objects and arrays are compared field by field, whatever
 * their fields are, so settings added later are compared without a change here. Objects with an
 * `equals` method (SecretSource, and also Buffer and KeyObject) are compared by it; a class
 * holding a value in private fields needs one, or it would compare equal to any other instance.
 */
export function sameValue(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (typeof (a as { equals?: unknown }).equals === 'function') return (a as { equals(other: unknown): boolean }).equals(b);
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (Array.isArray(a)) {
    const other = b as unknown[];
    return a.length === other.length && a.every((item, i) => sameValue(item, other[i]));
  }
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  // Instances of other classes with no fields of their own (URL, say) show what they hold in their string form.
  if (keys.length === 0 && !isPlain(a)) return String(a) === String(b);
  return keys.every((key) => Object.hasOwn(b, key) && sameValue((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]));
}

/** The top-level fields of two objects whose values differ (set in only one of them counts). */
export function changedFields<T extends object>(a: T, b: T): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((key) => !sameValue((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]));
}

/**
 * A short name of a resolved config: the first 12 hex digits of the SHA-256 of its canonical JSON.
 * Secrets enter it as their source only ("[secret]", "[secret from /run/secrets/x]", see
 * SecretSource.toJSON), never their value: a hash of a short secret could be guessed offline. So a
 * change of an inline secret alone leaves the hash as it was (the reload still applies it).
 */
export function configHash(config: SidecarConfig): string {
  return createHash('sha256').update(canonicalJson(config)).digest('hex').slice(0, 12);
}

/** JSON with the keys of every object in sorted order, so equal configs give equal text. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) => {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) return item;
    return Object.fromEntries(Object.entries(item).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
  });
}

function isPlain(value: object): boolean {
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}
