/**
 * Names on both sides of an uplink, pure functions. A Myelin topic `/a/b.c` becomes the subject
 * tokens `a.b%2Ec` (`.` inside a level is written `%2E`, which no Myelin level contains, so the
 * mapping goes back unchanged). Subjects and streams per site:
 *
 * | what                        | subject                     | stream              |
 * | --------------------------- | --------------------------- | ------------------- |
 * | site → cloud, durable topic | `sites.<site>.<topic>`      | `MYELIN_SITE_<site>` |
 * | site → cloud, volatile      | `live.<site>.<topic>`       | none (core NATS)    |
 * | cloud → site, commands      | `cmd.<site>.<topic>`        | `MYELIN_CMD_<site>`  |
 *
 * Volatile topics have subjects of their own, outside the site's stream, so the stream never
 * stores them.
 *
 * In the cloud hub, a site's topic `/a/b` is stored as `/sites/<site>/a/b`; a cloud durable topic
 * `/to_site/<site>/a/b` is forwarded to that site, where it is stored as `/a/b`.
 */
import { DecodeError } from "../errors.js";

/** Headers of a forwarded message. */
export const UPLINK_HEADERS = Object.freeze({
  /** The message type name (e.g. `sensor_msgs/Imu`). */
  type: "Myelin-Type",
  /** The sequence number of the message in the durable log it comes from. */
  seq: "Myelin-Seq",
  /**
   * The sequence number of the message forwarded before it on the same topic (0 for the first
   * of a forwarder): the consumer stores a message only when it holds everything up to this one.
   */
  prev: "Myelin-Prev",
  /** The publish time at the origin, in ms since the epoch. */
  time: "Myelin-Time",
});

/** Prefix of the cloud's copies of the sites' topics. */
export const SITES_PREFIX = "/sites/";
/** Prefix of the cloud's durable topics that go to a site. */
export const TO_SITE_PREFIX = "/to_site/";

/** Subject tokens of a Myelin topic (without the leading `/`). */
export function topicToTokens(topic: string): string {
  return topic
    .slice(1)
    .split("/")
    .map((l) => l.replaceAll("%", "%25").replaceAll(".", "%2E"))
    .join(".");
}

/** The Myelin topic of subject tokens. */
export function tokensToTopic(tokens: string): string {
  return (
    "/" +
    tokens
      .split(".")
      .map((l) => l.replaceAll("%2E", ".").replaceAll("%25", "%"))
      .join("/")
  );
}

/** The subject of a site's exported topic. */
export function siteSubject(site: string, topic: string): string {
  return `sites.${site}.${topicToTokens(topic)}`;
}

/** The subject of a command topic for a site. */
export function commandSubject(site: string, topic: string): string {
  return `cmd.${site}.${topicToTokens(topic)}`;
}

/** The JetStream stream holding a site's durable exports. */
export function siteStream(site: string): string {
  return `MYELIN_SITE_${site}`;
}

/** The JetStream stream holding the commands to a site. */
export function commandStream(site: string): string {
  return `MYELIN_CMD_${site}`;
}

/** `Nats-Msg-Id` of a forwarded message: `<origin><topic>/<seq>`, e.g. `cell-7/robot/pose/42`. */
export function forwardMsgId(origin: string, topic: string, seq: number): string {
  return `${origin}${topic}/${seq}`;
}

/**
 * The Myelin topic a subject stands for, after its `<kind>.<site>.` prefix; undefined when the
 * subject does not start with that prefix.
 */
export function topicOfSubject(kind: "sites" | "cmd", site: string, subject: string): string | undefined {
  const prefix = `${kind}.${site}.`;
  if (!subject.startsWith(prefix) || subject.length === prefix.length) return undefined;
  return tokensToTopic(subject.slice(prefix.length));
}

/**
 * The site and the site's topic of a cloud topic `/to_site/<site>/…`, or undefined for another topic.
 */
export function splitToSiteTopic(topic: string): { site: string; topic: string } | undefined {
  if (!topic.startsWith(TO_SITE_PREFIX)) return undefined;
  const rest = topic.slice(TO_SITE_PREFIX.length);
  const i = rest.indexOf("/");
  if (i <= 0 || i === rest.length - 1) return undefined;
  return { site: rest.slice(0, i), topic: rest.slice(i) };
}

/** Reads a non-negative integer header. @throws DecodeError ERR_DECODE when missing or not one */
export function intHeader(value: string | undefined, name: string, subject: string): number {
  const n = value === undefined || value === "" ? NaN : Number(value);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new DecodeError(
      "ERR_DECODE",
      `message on ${subject}: header ${name} is ${value === undefined ? "missing" : JSON.stringify(value)}; it was not published by a Myelin uplink`,
    );
  }
  return n;
}
