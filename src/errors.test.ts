import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import * as errors from "./errors.js";
import {
  ERROR_CLASS_OF,
  ERROR_CODES,
  MyelinError,
  myelinError,
  SpecError,
  TimeoutError,
  type ErrorClassName,
  type ErrorCode,
} from "./errors.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DOC = readFileSync(join(ROOT, "docs/errors.md"), "utf8");

/** The error classes, by name, from the module itself. */
const CLASS_BY_NAME = errors as unknown as Record<
  ErrorClassName,
  abstract new (...args: never[]) => MyelinError
>;
const CLASS_NAMES = [...new Set(Object.values(ERROR_CLASS_OF))];

test("docs/errors.md lists exactly the codes in src/errors.ts", () => {
  const documented = [...DOC.matchAll(/^\| `(ERR_[A-Z_]+)`/gm)].map((m) => m[1]);
  assert.deepEqual([...documented].sort(), [...ERROR_CODES].sort());
});

test("the class column of docs/errors.md is ERROR_CLASS_OF", () => {
  const documented: Record<string, string> = {};
  for (const m of DOC.matchAll(/^\| `(ERR_[A-Z_]+)` *\| `(\w+)` *\|/gm)) documented[m[1]!] = m[2]!;
  assert.deepEqual(
    documented,
    { ...ERROR_CLASS_OF },
    "docs/errors.md and ERROR_CLASS_OF in src/errors.ts name different classes: decide which is right and change the other",
  );
  assert.equal(Object.keys(documented).length, ERROR_CODES.length, "every code row needs a class");
});

test("the classes table of docs/errors.md lists each class's codes", () => {
  const rows = new Map<string, string>();
  for (const m of DOC.matchAll(/^\| `(\w+Error)` *\| ([^|]+)\|/gm)) rows.set(m[1]!, m[2]!.trim());
  assert.deepEqual([...rows.keys()].sort(), [...CLASS_NAMES].sort());
  for (const [name, cell] of rows) {
    if (name === "MyelinError") {
      assert.equal(cell, "every other code");
      continue;
    }
    const codes = [...cell.matchAll(/`(ERR_[A-Z_]+)`/g)].map((m) => m[1]);
    const expected = ERROR_CODES.filter((c) => ERROR_CLASS_OF[c] === name);
    assert.deepEqual(codes.sort(), [...expected].sort(), `codes of ${name} in docs/errors.md`);
  }
});

test("myelinError builds every code as its documented class, keeping message and cause", () => {
  const cause = new Error("socket closed");
  for (const code of ERROR_CODES) {
    const name = ERROR_CLASS_OF[code];
    const cls = CLASS_BY_NAME[name];
    assert.equal(typeof cls, "function", `${name} is exported from src/errors.ts`);
    const err = myelinError(code, `something about ${code}`, { cause });
    assert.ok(err instanceof cls, `${code} is a ${name}`);
    assert.ok(err instanceof MyelinError);
    assert.equal(err.name, name);
    assert.equal(err.code, code);
    assert.equal(err.message, `something about ${code}`);
    assert.equal(err.cause, cause);
  }
});

test("errors carry their code, class name and cause", () => {
  const cause = new Error("socket closed");
  const err = new TimeoutError("ERR_TIMEOUT", "service /add did not answer within 5 ms", { cause });
  assert.ok(err instanceof MyelinError);
  assert.equal(err.code, "ERR_TIMEOUT");
  assert.equal(err.name, "TimeoutError");
  assert.equal(err.cause, cause);
  const hub = new TimeoutError("ERR_HUB_UNREACHABLE", "no hub answered");
  assert.equal(hub.code, "ERR_HUB_UNREACHABLE");
});

test("a code cannot be built with another class: a type error, and a TypeError at run time", () => {
  assert.throws(
    // @ts-expect-error ERR_TIMEOUT is a TimeoutError, not a plain MyelinError
    () => new MyelinError("ERR_TIMEOUT", "x"),
    (e: unknown) => e instanceof TypeError && /ERR_TIMEOUT is thrown as TimeoutError/.test(e.message),
  );
  assert.throws(
    // @ts-expect-error ERR_CLOSED is a ClosedError
    () => new TimeoutError("ERR_CLOSED", "x"),
    (e: unknown) =>
      e instanceof TypeError && /ERR_CLOSED is thrown as ClosedError, not TimeoutError/.test(e.message),
  );
  const code = "ERR_NO_SERVER" as ErrorCode;
  assert.throws(() => new MyelinError(code as "ERR_STORAGE", "x"), TypeError);
});

test("a subclass of a class still carries the class's codes", () => {
  class AppError extends MyelinError {}
  const e = new AppError("ERR_INVALID_ARGUMENT", "bad");
  assert.equal(e.name, "AppError");
  assert.ok(e instanceof MyelinError);
  class SlowError extends TimeoutError {}
  assert.ok(new SlowError("ERR_TIMEOUT", "slow") instanceof TimeoutError);
});

test("SpecError lists its problems, or takes a message of its own", () => {
  const problems = [{ file: "a.yaml", line: 3, col: 5, field: "nodes.x.replicas", message: "must be ≥ 1" }];
  const e = new SpecError(problems);
  assert.equal(e.code, "ERR_SPEC");
  assert.equal(e.name, "SpecError");
  assert.deepEqual(e.problems, problems);
  assert.equal(
    e.message,
    "launch spec refused (1 problem; nothing was started):\n  a.yaml:3:5: nodes.x.replicas: must be ≥ 1",
  );
  const cause = new Error("ENOENT");
  const own = new SpecError(problems, { message: "no launch spec at a.yaml", cause });
  assert.equal(own.message, "no launch spec at a.yaml");
  assert.equal(own.cause, cause);
  const built = myelinError("ERR_SPEC", "from a peer");
  assert.ok(built instanceof SpecError);
  assert.deepEqual(built.problems, []);
});

/** Every .ts file under src/ that is not a test. */
function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sourceFiles(p, out);
    else if (name.endsWith(".ts") && !name.endsWith(".test.ts") && !name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

test("src/ builds every error with a literal code as the code's class, and casts no code", () => {
  const classNames = new Set<string>(CLASS_NAMES);
  const wrong: string[] = [];
  let checked = 0;
  for (const file of sourceFiles(join(ROOT, "src"))) {
    const rel = relative(ROOT, file);
    const sf = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
    const at = (n: ts.Node): string => `${rel}:${sf.getLineAndCharacterOfPosition(n.getStart()).line + 1}`;
    const visit = (n: ts.Node): void => {
      if (ts.isClassDeclaration(n) && rel !== join("src", "errors.ts")) {
        for (const h of n.heritageClauses ?? []) {
          for (const t of h.types) {
            if (ts.isIdentifier(t.expression) && classNames.has(t.expression.text)) {
              wrong.push(
                `${at(n)}: class ${n.name?.text ?? "?"} extends ${t.expression.text}: error classes live in src/errors.ts, in ERROR_CLASS_OF`,
              );
            }
          }
        }
      }
      const isNew =
        ts.isNewExpression(n) && ts.isIdentifier(n.expression) && classNames.has(n.expression.text);
      const isFactory =
        ts.isCallExpression(n) && ts.isIdentifier(n.expression) && n.expression.text === "myelinError";
      if ((isNew || isFactory) && n.expression.getText() !== "SpecError") {
        const arg = n.arguments?.[0];
        const cls = n.expression.getText();
        if (arg !== undefined && ts.isStringLiteral(arg)) {
          checked++;
          const code = arg.text as ErrorCode;
          if (!(ERROR_CODES as readonly string[]).includes(code))
            wrong.push(`${at(n)}: ${code} is no error code`);
          else if (isNew && ERROR_CLASS_OF[code] !== cls)
            wrong.push(`${at(n)}: new ${cls}("${code}", …) but ${code} is a ${ERROR_CLASS_OF[code]}`);
        } else if (
          arg !== undefined &&
          rel !== join("src", "errors.ts") &&
          (ts.isAsExpression(arg) || ts.isTypeAssertionExpression(arg) || ts.isSatisfiesExpression(arg))
        ) {
          wrong.push(`${at(n)}: ${cls}(${arg.getText()}, …): do not cast a code; use myelinError(code, …)`);
        }
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  assert.ok(checked > 100, `found only ${checked} errors built with a literal code; is the scan broken?`);
  assert.deepEqual(wrong, [], `errors built with the wrong class:\n${wrong.join("\n")}`);
});
