/**
 * Reading the permission policy file (YAML, see docs/security.md): the hub loads it at start
 * (`myelin hub --policy FILE` or `MYELIN_POLICY`) and again on SIGHUP or `myelin policy reload`,
 * checks it whole, and refuses a bad one (to start, or to replace the policy in force) with an
 * error naming the file, the entry and what is accepted.
 */
import { readFileSync } from "node:fs";
import { yaml } from "../codec/yaml.js";
import { MyelinError } from "../errors.js";
import { AccessPolicy, policyFromObject, type PolicyDoc } from "../node/access-policy.js";

/**
 * Parses a policy from YAML text.
 * @param source the file's path, named in every error
 * @throws MyelinError ERR_BAD_CONFIG naming the file, the entry and what is accepted
 */
export function parsePolicy(text: string, source: string): PolicyDoc {
  const doc = yaml().parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new MyelinError(
      "ERR_BAD_CONFIG",
      `${source}: not valid YAML: ${doc.errors.map((e) => e.message).join("; ")}`,
    );
  }
  const policy = policyFromObject(doc.toJS(), source);
  new AccessPolicy(policy); // every pattern compiles, or this throws naming it
  return policy;
}

/**
 * Reads and checks a policy file.
 * @throws MyelinError ERR_BAD_CONFIG when it cannot be read or is not a valid policy
 */
export function loadPolicyFile(path: string): PolicyDoc {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new MyelinError(
      "ERR_BAD_CONFIG",
      `cannot read the policy file ${path}: ${(err as Error).message}; check the path given to --policy (or MYELIN_POLICY)`,
      { cause: err },
    );
  }
  return parsePolicy(text, path);
}
