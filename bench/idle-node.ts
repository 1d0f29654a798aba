/**
 * The standalone idle node of the `idle-rss` case (`idle-node` rows): a program that contains
 * only what a user's program would, with no bench harness. It imports the package entry ("myelin"),
 * makes a node with one subscription through the hub of `MYELIN_RUNTIME_DIR`, prints `up` and
 * idles until it is stopped; the runner reads its RSS from outside (bench/idle-hub.ts).
 */
import { createNode, geometry_msgs } from "myelin";

const node = await createNode({ name: `bench_idle_node_${process.pid}` });
await node.createSubscription("/bench/idle_node", geometry_msgs.Twist, () => undefined);
console.log("up");
const idle = setInterval(() => undefined, 60_000);
process.once("SIGTERM", () => {
  clearInterval(idle);
  void node.close().finally(() => process.exit(0));
});
