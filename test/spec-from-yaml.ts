/**
 * Launch specs for unit tests, written as YAML and resolved by the real loader (defaults,
 * dependency order, composition), without checking that modules and commands exist.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadSpec, type LaunchSpec, type UnitSpec } from "../src/orchestrator/spec.js";

/** The spec `yaml` (a `myelin.yaml`; `version: 1` is added) resolves to. */
export function specFromYaml(yaml: string): LaunchSpec {
  const dir = mkdtempSync(join(tmpdir(), "myelin-spec-"));
  try {
    const file = join(dir, "myelin.yaml");
    writeFileSync(file, `version: 1\n${yaml}`);
    return loadSpec(file, { checkFiles: false });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The unit named `name` of `spec`. */
export function unitOf(spec: LaunchSpec, name: string): UnitSpec {
  const u = spec.units.find((x) => x.name === name);
  if (u === undefined)
    throw new Error(`no unit ${name} in the spec; units: ${spec.units.map((x) => x.name).join(", ")}`);
  return u;
}
