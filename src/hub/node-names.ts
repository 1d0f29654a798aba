/** How the hub names a node in its log and its refusals. */

/** A node as a user knows it: the hidden nodes of the CLI and the hub's services by what they are. */
export function describeNode(name: string): string {
  const cli = /^_myelin_(.+)_(\d+)$/.exec(name);
  if (cli !== null) return `the CLI (myelin ${cli[1]!.replace(/_/g, " ")}, pid ${cli[2]})`;
  if (name === "_store") return "the hub's store";
  if (name === "_gateway") return "the MQTT gateway";
  if (name.startsWith("_supervisor")) return "the hub's supervisor";
  return `node ${name}`;
}
