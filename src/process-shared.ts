/**
 * State that must exist once per process, not once per copy of Myelin's code.
 *
 * One process can hold two copies of Myelin: the bundle that `import "myelin"` gives users
 * (dist/pkg/myelin.js) and the unbundled modules under dist/src/ that the CLI, the hub and the
 * module runner import; or two installs of the same version in two `node_modules` folders. Each
 * copy evaluates its modules once, so a module-level `new Map()` or `Symbol()` would exist twice:
 * a type defined with one copy would not be a type to the other, a type registered through one
 * would not be found through the other, and two ZAP handlers would fight over the one endpoint.
 *
 * {@link processShared} keeps such a value on `globalThis` under
 * `Symbol.for("myelin.<name>.v<SHARED_STATE_VERSION>")`, so every copy of the same
 * {@link SHARED_STATE_VERSION} finds the one value the first copy made, and copies of different
 * versions never share (each keeps its own). Caches that only speed things up (a WeakMap of
 * compiled codecs by type) stay per copy.
 *
 * Imports nothing: every layer (src/errors.ts included) may import this module.
 */

/**
 * The version of the shapes of every value kept with {@link processShared} (and of the error
 * brand of src/errors.ts). Bump when the shape of any shared value changes: a field, a method
 * another copy calls, what a map holds. Copies of different versions then keep their own values.
 */
export const SHARED_STATE_VERSION = 1;

/** The registry key of shared value `name`: `Symbol.for("myelin.<name>.v<SHARED_STATE_VERSION>")`. */
export function sharedKey(name: string): symbol {
  return Symbol.for(`myelin.${name}.v${SHARED_STATE_VERSION}`);
}

/**
 * The one value named `name` in this process: the first copy of Myelin to ask makes it with
 * `init()`, every later call (from any copy of this {@link SHARED_STATE_VERSION}) gets the same
 * one. `name` is dotted by module, e.g. `msgs.registry`. Keep mutable scalars in an object
 * (`{ socket: undefined }`), since the value itself is never replaced.
 */
export function processShared<T>(name: string, init: () => T): T {
  const key = sharedKey(name);
  const g = globalThis as unknown as Record<symbol, unknown>;
  if (!Object.prototype.hasOwnProperty.call(g, key)) {
    Object.defineProperty(g, key, { value: init(), enumerable: false, writable: false, configurable: false });
  }
  return g[key] as T;
}
