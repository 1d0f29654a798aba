/**
 * Property tests of the Foxglove config parser (docs/fuzzing.md): anything read from a config
 * file is a set of settings or ERR_BAD_CONFIG naming the field, never another error.
 */
import { test } from "node:test";
import { check, configValue, cyclic, parseOrCoded } from "../../test/fuzz-helpers.js";
import { parseFoxgloveConfig } from "./config.js";

const KEYS = [
  "host",
  "port",
  "token",
  "tokenFile",
  "tls",
  "cert",
  "key",
  "topics",
  "publishTopics",
  "maxHz",
  "publish",
  "services",
  "parameters",
  "showHidden",
  "sendBudgetBytes",
  "maxClients",
  "timeIntervalMs",
];

test("the Foxglove config parser: settings or ERR_BAD_CONFIG", () => {
  check("parseFoxgloveConfig", 3000, [configValue(KEYS, 4)], (v) => {
    parseOrCoded("parseFoxgloveConfig", ["ERR_BAD_CONFIG"], v, () =>
      parseFoxgloveConfig(v, "/nonexistent-myelin-fuzz", "fuzz.yaml"),
    );
  });
  parseOrCoded("parseFoxgloveConfig", ["ERR_BAD_CONFIG"], "cyclic", () =>
    parseFoxgloveConfig({ topics: cyclic() }, "/nonexistent-myelin-fuzz", "fuzz.yaml"),
  );
});
