// Writes schema/myelin.schema.json, the published JSON Schema of the launch spec, from
// src/orchestrator/spec-schema.ts (build first: `npm run build`). A test checks the two agree.
import { writeFileSync } from "node:fs";
import { LAUNCH_SPEC_SCHEMA } from "../dist/src/orchestrator/spec-schema.js";

writeFileSync(
  new URL("../schema/myelin.schema.json", import.meta.url),
  `${JSON.stringify(LAUNCH_SPEC_SCHEMA, null, 2)}\n`,
);
console.log("wrote schema/myelin.schema.json");
