/**
 * The node the restart benchmark supervises: serves one service and is ready once that is
 * registered. As a module (default export, run by the supervisor's runner) or as a command.
 */
import { createNode, std_srvs, type Node } from "../src/index.js";

export default async function restartNode(node: Node): Promise<void> {
  await node.createService(`/${node.name}/ping`, std_srvs.Trigger, () => ({
    success: true,
    message: "pong",
  }));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const node = await createNode({ name: process.env["MYELIN_NODE_NAME"] ?? "bench", manualReady: true });
  await restartNode(node);
  node.setReady(true);
  process.on("SIGTERM", () => void node.close().then(() => process.exit(0)));
}
