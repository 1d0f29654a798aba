/**
 * The store commands across a site: each host's hub keeps its own store and a persistent publish
 * is stored on the publisher's host, so `topic info`, `topic read` and `topic config` take
 * `--host H` to use the store of host H; an unknown host or one without a store is an error that
 * names the hosts that have one.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { PlWorld } from "./placement-world.js";

test(
  "topic info, read and config --host use another host's store; unknown hosts are named errors",
  { timeout: 180000 },
  async () => {
    await using w = new PlWorld(["sta", "stb"]);
    await w.pair(["--listen", "tcp://127.0.0.1:0", "--advertise-address", "127.0.0.1"]);

    // Three persistent messages on host stb: stored by stb's store only.
    const pub = await w.cli(1, [
      "topic",
      "pub",
      "/alerts",
      "std_msgs/String",
      "{data: hot}",
      "--persistent",
      "--count",
      "3",
      "--rate",
      "50",
    ]);
    assert.equal(pub.code, 0, `pub: ${pub.stdout}\n${pub.stderr}`);

    const remote = await w.cli(0, ["topic", "read", "/alerts", "--host", "stb", "--json"]);
    assert.equal(remote.code, 0, `read --host stb: ${remote.stdout}\n${remote.stderr}`);
    const rows = remote.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { seq: number; msg: { data: string } });
    assert.deepEqual(
      rows.map((r) => [r.seq, r.msg.data]),
      [
        [1, "hot"],
        [2, "hot"],
        [3, "hot"],
      ],
    );

    // The store of host sta never saw the topic.
    const local = await w.cli(0, ["topic", "read", "/alerts", "--json"]);
    assert.notEqual(local.code, 0, `local read: ${local.stdout}`);
    assert.match(
      local.stderr,
      /no durable topic \/alerts.*in the store of host sta.*add --host H for one of stb/s,
    );

    const info = await w.cli(0, ["topic", "info", "/alerts", "--host", "stb", "--json"]);
    assert.equal(info.code, 0, `info --host stb: ${info.stdout}\n${info.stderr}`);
    const durable = (JSON.parse(info.stdout) as { durable: { last_seq?: number; lastSeq?: number } | null })
      .durable;
    assert.notEqual(durable, null, info.stdout);

    const conf = await w.cli(0, [
      "topic",
      "config",
      "/alerts",
      "--host",
      "stb",
      "--max-messages",
      "2",
      "--json",
    ]);
    assert.equal(conf.code, 0, `config --host stb: ${conf.stdout}\n${conf.stderr}`);
    assert.equal(
      (JSON.parse(conf.stdout) as { retention: { maxMessages: number } }).retention.maxMessages,
      2,
    );
    const back = await w.cli(1, ["topic", "config", "/alerts", "--json"]);
    assert.equal(
      (JSON.parse(back.stdout) as { retention: { maxMessages: number } }).retention.maxMessages,
      2,
    );

    const unknown = await w.cli(0, ["topic", "read", "/alerts", "--host", "nosuch"]);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /no host named nosuch is in the site: hosts with a store: sta, stb/);
  },
);
