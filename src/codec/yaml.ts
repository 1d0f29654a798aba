/**
 * The `yaml` package, loaded on first use. It is some seventy CommonJS modules and a few MB of heap
 * once loaded, and most processes (an idle node, a hub without config files) never read or write
 * YAML, so every module of ours that does goes through {@link yaml} instead of importing it.
 */
import { createRequire } from "node:module";
import type * as YamlLib from "yaml";

let lib: typeof YamlLib | undefined;

/** The `yaml` package (parse, stringify, parseDocument, LineCounter, isMap…), required on the first call. */
export function yaml(): typeof YamlLib {
  lib ??= createRequire(import.meta.url)("yaml") as typeof YamlLib;
  return lib;
}
