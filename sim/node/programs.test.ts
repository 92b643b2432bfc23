import assert from "node:assert/strict";
import { test } from "node:test";
import { isNoOpCommand } from "./programs.ts";

test("isNoOpCommand: a command the simulation knows to exit 0 at once replaces the image's program", () => {
  const cases: [string, string[] | undefined, string[] | undefined, boolean][] = [
    ["no command: the image's entrypoint runs", undefined, undefined, false],
    ["args alone keep the entrypoint", undefined, ["true"], false],
    ["empty command keeps the entrypoint", [], undefined, false],
    ["true", ["true"], undefined, true],
    ["true in a directory, with arguments", ["/azp-prepull/true"], ["ignored"], true],
    ["busybox true", ["/bin/busybox", "true"], undefined, true],
    ["busybox cp", ["busybox"], ["cp", "/bin/true", "/x/true"], true],
    ["cp", ["cp", "/bin/true", "/azp-prepull/true"], undefined, true],
    ["sh -c true", ["/bin/sh", "-c", "true"], undefined, true],
    ["sh -c with args", ["sh"], ["-c", " exit 0 "], true],
    ["bash -c :", ["bash", "-c", ":"], undefined, true],
    ["sh -c something else", ["sh", "-c", "sleep 10"], undefined, false],
    ["sh without -c", ["sh", "true"], undefined, false],
    ["another program", ["/agent/run.sh"], ["--once"], false],
    ["a program named like true but longer", ["/bin/truex"], undefined, false],
    ["busybox sleep", ["busybox", "sleep", "5"], undefined, false],
  ];
  for (const [name, command, args, expected] of cases) assert.equal(isNoOpCommand(command, args), expected, name);
});
