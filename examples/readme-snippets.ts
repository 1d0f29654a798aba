/**
 * The README's code, compiled with the rest so the front door cannot drift from the API.
 * Not run by itself: `runReadmeSnippets()` is called by a test against a real hub.
 */
import {
  createNode,
  defineMessage,
  example_interfaces,
  geometry_msgs,
  sensor_msgs,
  std_msgs,
  t,
  QOS_SENSOR_DATA,
  type MessageOf,
} from "myelin";

export const Pallet = defineMessage("warehouse_msgs/Pallet", {
  id: t.string(),
  weight_kg: t.f32(),
  position: t.msg(geometry_msgs.Point),
  photo: t.optional(t.bytes()),
  tags: t.array(t.string(), { maxLength: 16 }),
  state: t.enum({ WAITING: 0, MOVING: 1, STORED: 2 }),
});
export type Pallet = MessageOf<typeof Pallet>;

/** Runs the README's examples; resolves with what they produced. */
export async function runReadmeSnippets(
  runtimeDir: string,
): Promise<{ sum: bigint; status: string[]; fps: number }> {
  const node = await createNode({ name: "driver", runtimeDir });
  const status: string[] = [];

  const cmd = await node.createPublisher("/cmd_vel", geometry_msgs.Twist);
  await cmd.publish({ linear: { x: 0.5, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0.1 } });

  await node.createSubscription("/status", std_msgs.String, (msg, info) => {
    status.push(`${info.publisher} #${info.seq}: ${msg.data}`);
  });
  const statusPub = await node.createPublisher("/status", std_msgs.String);
  await statusPub.publish({ data: "ready" });

  const scans = await node.createSubscription("/scan", sensor_msgs.LaserScan, undefined, {
    qos: QOS_SENSOR_DATA,
    queueSize: 10,
    overflow: "drop-oldest",
  });
  const scanPub = await node.createPublisher("/scan", sensor_msgs.LaserScan, { qos: QOS_SENSOR_DATA });
  await scanPub.publish(sensor_msgs.LaserScan.create({ ranges: [1, 2, 3] }));
  for await (const { msg } of scans) {
    if (msg.ranges.length === 3) break;
  }

  const pallet: Pallet = Pallet.create({ id: "p-1", tags: ["fragile"] });
  if (!Pallet.validate(pallet).ok) throw new Error("the default pallet should be valid");

  await node.createService("/add", example_interfaces.AddTwoInts, ({ a, b }) => ({ sum: a + b }));
  const add = node.createClient("/add", example_interfaces.AddTwoInts, { timeoutMs: 1000 });
  await add.waitForService(5000);
  const { sum } = await add.call({ a: 2n, b: 40n });

  const orders = await node.createPublisher("/orders", std_msgs.String, {
    qos: { durability: "persistent" },
  });
  await orders.publish({ data: "order 42" });
  const billing = node.createDurableConsumer("/orders", std_msgs.String, {
    name: "billing",
    ackTimeoutMs: 30000,
    maxDeliver: 5,
  });
  for await (const m of billing) {
    status.push(`stored: ${m.msg.data}`);
    await m.ack();
    break;
  }

  const fps = node.declareParameter("fps", { type: "double", default: 15, min: 1, max: 120 });
  let changed = 0;
  fps.on("change", (v) => (changed = v));
  fps.set(30);

  await node.close();
  return { sum, status, fps: changed };
}
