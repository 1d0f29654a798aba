/**
 * An Apache ActiveMQ 5 broker (Debian's `activemq` package) for the MQTT bridge's conformance
 * suite: its own instance in a temp directory (configuration, KahaDB store), with only an MQTT
 * connector, on a free port of 127.0.0.1; stopped (SIGTERM: it closes its store cleanly) and
 * restarted on the same port and store for the outage case.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, tempDir, waitForPort } from "./bridge-peers.js";

const JAR = "/usr/share/activemq/bin/activemq.jar";
const HOME = "/usr/share/activemq";
/** The MQTT codec ActiveMQ's MQTT connector needs; Debian's activemq package does not pull it in. */
const MQTT_CODEC = "/usr/share/java/mqtt-client.jar";

/** Why ActiveMQ cannot run here, or undefined if it can. */
export function activeMqUnavailable(): string | undefined {
  if (!existsSync(JAR))
    return `${JAR} is missing: install Debian's activemq package (apt-get install activemq)`;
  if (spawnSync("java", ["-version"]).status !== 0)
    return "java is missing: install Debian's default-jre-headless";
  return undefined;
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** An ActiveMQ broker serving MQTT 3.1.1 on a free port; restartable on the same port and store. */
export class ActiveMq {
  #child: ChildProcess | undefined;
  readonly #tmp: { dir: string; [Symbol.dispose](): void };
  readonly #output: string[] = [];

  private constructor(
    readonly port: number,
    tmp: { dir: string; [Symbol.dispose](): void },
  ) {
    this.#tmp = tmp;
    process.once("exit", this.#removeTmp);
    const d = tmp.dir;
    for (const sub of ["conf", "data", "tmp", "lib"]) mkdirSync(join(d, sub));
    // The instance's lib/ is on ActiveMQ's extension class path: the MQTT codec goes there.
    symlinkSync(MQTT_CODEC, join(d, "lib", "mqtt-client.jar"));
    writeFileSync(
      join(d, "conf", "log4j.properties"),
      [
        "log4j.rootLogger=WARN, out",
        "log4j.appender.out=org.apache.log4j.ConsoleAppender",
        "log4j.appender.out.layout=org.apache.log4j.PatternLayout",
        "log4j.appender.out.layout.ConversionPattern=%d %-5p %c{1} - %m%n",
        "",
      ].join("\n"),
    );
    writeFileSync(
      join(d, "conf", "activemq.xml"),
      `<beans xmlns="http://www.springframework.org/schema/beans" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false" brokerName="myelin-test" persistent="true" dataDirectory="${xmlEscape(join(d, "data"))}">
    <persistenceAdapter><kahaDB directory="${xmlEscape(join(d, "data", "kahadb"))}"/></persistenceAdapter>
    <transportConnectors>
      <transportConnector name="mqtt" uri="mqtt://127.0.0.1:${port}"/>
    </transportConnectors>
  </broker>
</beans>
`,
    );
  }

  /** Starts a broker on a free port (a JVM: a few seconds). */
  static async start(): Promise<ActiveMq> {
    const m = new ActiveMq(await freePort(), tempDir("myelin-activemq-"));
    try {
      await m.restart();
    } catch (err) {
      await m[Symbol.asyncDispose]();
      throw err;
    }
    return m;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** Starts the broker (again) on its port and store; resolves when the MQTT port accepts connections. */
  async restart(timeoutMs = 45000): Promise<void> {
    const d = this.#tmp.dir;
    const child = spawn(
      "java",
      [
        "-Xms64m",
        "-Xmx256m",
        `-Dactivemq.home=${HOME}`,
        `-Dactivemq.base=${d}`,
        `-Dactivemq.conf=${join(d, "conf")}`,
        `-Dactivemq.data=${join(d, "data")}`,
        `-Djava.io.tmpdir=${join(d, "tmp")}`,
        `-Dlog4j.configuration=file:${join(d, "conf", "log4j.properties")}`,
        "-jar",
        JAR,
        "start",
        `xbean:file:${join(d, "conf", "activemq.xml")}`,
      ],
      { cwd: d, stdio: ["ignore", "pipe", "pipe"] },
    );
    this.#child = child;
    // Never outlive the test process, even when it dies before close(): a JVM would stay behind.
    const reap = (): void => void child.kill("SIGKILL");
    process.once("exit", reap);
    child.once("exit", () => process.off("exit", reap));
    const keep = (b: Buffer): void => {
      this.#output.push(b.toString());
      if (this.#output.length > 100) this.#output.shift();
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    const exited = new Promise<never>((_, reject) =>
      child.once("exit", (code, sig) =>
        reject(
          new Error(
            `ActiveMQ exited (${code ?? sig}) before it listened:\n${this.#output.join("").slice(-2000)}`,
          ),
        ),
      ),
    );
    exited.catch(() => undefined);
    await Promise.race([waitForPort(this.port, timeoutMs, "ActiveMQ"), exited]);
  }

  /** Stops the broker (SIGTERM, then SIGKILL after `timeoutMs`) and resolves when it exited. */
  async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 15000): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    await exited;
    clearTimeout(timer);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    process.off("exit", this.#removeTmp);
    await this.stop("SIGKILL");
    this.#tmp[Symbol.dispose]();
  }

  readonly #removeTmp = (): void => this.#tmp[Symbol.dispose]();
}
