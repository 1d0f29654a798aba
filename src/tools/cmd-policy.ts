/** `myelin policy reload`: the hub reads its policy file again (docs/security.md). */
import { MyelinError } from "../errors.js";
import { HUB_INFO_PROTOCOL, reloadHubPolicy } from "../hub/index.js";
import { unlessInterrupted, withNode, type CommandSpec } from "./common.js";

/** `myelin policy reload`. */
export const policyReloadCommand: CommandSpec = {
  path: ["policy", "reload"],
  summary: "make the hub read its --policy file again (admins only)",
  args: [],
  options: {},
  details: [
    "The hub checks the whole file first: a bad file is refused with the error (exit code 1) and the policy in force stays. A good one is put in force at once and handed to every node of the hub, which re-registers: declarations the new policy refuses are removed, and nodes check subscribers and callers against it.",
    `Calls ${HUB_INFO_PROTOCOL.reloadPolicy.service}, an internal service: only identities the policy in force names as admins may call it (this host's user is one by default). 'kill -HUP <hub pid>' does the same without the answer.`,
  ],
  examples: [
    "myelin policy reload",
    "MYELIN_HUB=tcp://10.0.0.1:7447 myelin policy reload   # a remote hub, as a trusted admin key",
  ],
  connects: true,
  async run(ctx, inv) {
    return withNode(ctx, inv, "policy_reload", async (node) => {
      const r = await unlessInterrupted(reloadHubPolicy(node, 5000), ctx.signal);
      if (!r.ok) {
        throw new MyelinError(
          "ERR_BAD_CONFIG",
          `policy reload refused, the policy in force stays: ${r.message}`,
        );
      }
      ctx.out(
        r.changed
          ? `policy reloaded from ${r.source}: ${r.admins} admin(s), ${r.grants} grant(s); ${r.nodes} node(s) asked to register again`
          : `policy reloaded from ${r.source}: unchanged (${r.admins} admin(s), ${r.grants} grant(s))`,
      );
      return 0;
    });
  },
};
