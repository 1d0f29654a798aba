/**
 * A bare aedes 1.x broker on 127.0.0.1:<argv[2]>, for the MQTT benchmark (`impls/mqtt.ts`): the
 * engine the Myelin gateway embeds, with its defaults, so the gateway's own cost shows as a ratio.
 */
import net from "node:net";
import { Aedes } from "aedes";

const port = Number(process.argv[2]);
const broker = await Aedes.createBroker();
const server = net.createServer((sock) => broker.handle(sock));
server.listen(port, "127.0.0.1");
process.on("SIGTERM", () => {
  server.close();
  broker.close(() => process.exit(0));
});
