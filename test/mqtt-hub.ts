/**
 * A hub run by the CLI with its MQTT gateway on a free port, and MQTT 3.1.1 clients of it, for
 * tests that kill and restart the hub around MQTT sessions.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { Proc } from "./helpers.js";

/** The `myelin` CLI script. */
export const CLI = fileURLToPath(new URL("../../bin/myelin", import.meta.url));

/** Runs `myelin ARGS` to completion (asynchronously: a hub in this process keeps answering). */
export function execCli(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 20000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, ...env }, timeout: timeoutMs },
      (err, stdout, stderr) =>
        resolve({ code: (err as { code?: number } | null)?.code ?? 0, stdout, stderr }),
    ),
  );
}

/** Starts `myelin hub --mqtt-port PORT --no-store` and resolves once the gateway serves clients. */
export async function startGatewayHub(port: number, env: Record<string, string>): Promise<Proc> {
  const p = new Proc(CLI, ["hub", "--mqtt-port", String(port), "--no-store"], { ...env });
  try {
    await p.waitFor(
      (l) => l.event === "text" && /MQTT gateway: \d+ mapping rules/.test(String(l["text"])),
      20000,
      "the MQTT gateway to start",
    );
  } catch (err) {
    p.kill("SIGKILL");
    throw new Error(`${(err as Error).message}; hub stderr: ${p.stderr.slice(-5).join(" | ")}`);
  }
  return p;
}

/** Connects an MQTT 3.1.1 client (no automatic reconnect); resolves with its CONNACK's session flag. */
export async function connectMqtt(
  port: number,
  opts: IClientOptions,
): Promise<{ client: MqttClient; sessionPresent: boolean }> {
  const client = mqtt.connect({
    host: "127.0.0.1",
    port,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 10000,
    ...opts,
  });
  const sessionPresent = await new Promise<boolean>((resolve, reject) => {
    client.once("connect", (ack) => resolve(ack.sessionPresent));
    client.once("error", reject);
  });
  return { client, sessionPresent };
}
