import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  DEFAULT_AZURE_DEVOPS_HOSTS,
  hostMatches,
  judgeAuthority,
  judgeOrganizationUrl,
  normalizeAuthority,
  PUBLIC_CLOUD_AUTHORITY,
  parseHostPattern,
} from "./endpoints.ts";

describe("parseHostPattern", () => {
  const cases: [string, string | null][] = [
    ["dev.azure.com", "dev.azure.com"],
    [" Dev.Azure.COM ", "dev.azure.com"],
    ["*.visualstudio.com", "*.visualstudio.com"],
    ["tfs.example.com:8443", "tfs.example.com:8443"],
    ["127.0.0.1", "127.0.0.1"],
    ["127.0.0.1:8080", "127.0.0.1:8080"],
    ["[::1]", "[::1]"],
    ["[::1]:8080", "[::1]:8080"],
    ["https://dev.azure.com", null],
    ["dev.azure.com/org", null],
    ["*", null],
    ["*.", null],
    ["a.*.com", null],
    ["**.example.com", null],
    ["host:0", null],
    ["host:70000", null],
    ["", null],
    ["user@host", null],
  ];
  for (const [input, expected] of cases) {
    test(JSON.stringify(input), () => {
      const r = parseHostPattern(input);
      if (expected === null) {
        assert.equal(r.ok, false);
        if (!r.ok) assert.match(r.message, /host pattern|port/);
      } else {
        assert.deepEqual(r, { ok: true, value: expected });
      }
    });
  }
});

describe("hostMatches (rule 3)", () => {
  const cases: [string, string, boolean][] = [
    ["https://dev.azure.com/org", "dev.azure.com", true],
    ["https://DEV.Azure.com/org", "dev.azure.com", true],
    ["https://dev.azure.com:8443/org", "dev.azure.com", true],
    ["https://dev.azure.com/org", "dev.azure.com:443", true],
    ["https://dev.azure.com:8443/org", "dev.azure.com:443", false],
    ["http://dev.azure.com/org", "dev.azure.com:80", true],
    ["https://dev.azure.com.evil.example/org", "dev.azure.com", false],
    ["https://evil.example/dev.azure.com", "dev.azure.com", false],
    ["https://contoso.visualstudio.com", "*.visualstudio.com", true],
    ["https://visualstudio.com", "*.visualstudio.com", false],
    ["https://a.b.visualstudio.com", "*.visualstudio.com", false],
    ["https://evilvisualstudio.com", "*.visualstudio.com", false],
    ["https://visualstudio.com.evil.example", "*.visualstudio.com", false],
    ["http://127.0.0.1:4711/org", "127.0.0.1", true],
    ["http://127.0.0.1:4711/org", "127.0.0.1:4711", true],
    ["http://127.0.0.1:4712/org", "127.0.0.1:4711", false],
    ["http://[::1]:4711/org", "[::1]", true],
    ["http://[::1]:4711/org", "[::1]:4711", true],
    ["http://[::1]:4712/org", "[::1]:4711", false],
  ];
  for (const [url, pattern, expected] of cases) {
    test(`${url} ~ ${pattern}: ${expected}`, () => assert.equal(hostMatches(new URL(url), pattern), expected));
  }
});

describe("judgeOrganizationUrl (rules 1 to 3)", () => {
  const cloud = { hosts: DEFAULT_AZURE_DEVOPS_HOSTS, allowHttp: false };
  const lab = { hosts: ["127.0.0.1:4711", "tfs.example.com"], allowHttp: true };
  const cases: [string, string, typeof cloud, string | null][] = [
    ["Azure DevOps Services", "https://dev.azure.com/contoso", cloud, null],
    ["the old host form", "https://contoso.visualstudio.com/", cloud, null],
    ["http to the cloud", "http://dev.azure.com/contoso", cloud, "InsecureOrganizationUrl"],
    ["another host", "https://attacker.example/contoso", cloud, "OrganizationUrlNotAllowed"],
    ["a look-alike host", "https://dev.azure.com.attacker.example/contoso", cloud, "OrganizationUrlNotAllowed"],
    ["credentials in the URL", "https://dev.azure.com@attacker.example/contoso", cloud, "OrganizationUrlNotAllowed"],
    ["user and password", "https://u:p@dev.azure.com/contoso", cloud, "OrganizationUrlNotAllowed"],
    ["a query", "https://dev.azure.com/contoso?x=1", cloud, "OrganizationUrlNotAllowed"],
    ["not a URL", "dev.azure.com/contoso", cloud, "OrganizationUrlNotAllowed"],
    ["another scheme", "ftp://dev.azure.com/contoso", cloud, "OrganizationUrlNotAllowed"],
    ["an allowed lab host over http", "http://127.0.0.1:4711/sim-org", lab, null],
    ["the same address, another port", "http://127.0.0.1:4712/sim-org", lab, "OrganizationUrlNotAllowed"],
    ["Azure DevOps Server", "https://tfs.example.com/tfs/DefaultCollection", lab, null],
    ["the cloud is not on the lab's list", "https://dev.azure.com/contoso", lab, "OrganizationUrlNotAllowed"],
    [
      "no host allowed at all",
      "https://dev.azure.com/contoso",
      { hosts: [], allowHttp: false },
      "OrganizationUrlNotAllowed",
    ],
  ];
  for (const [name, url, rules, reason] of cases) {
    test(name, () => {
      const r = judgeOrganizationUrl(url, rules);
      if (reason === null) {
        assert.equal(r.ok, true, r.ok ? "" : r.message);
      } else {
        assert.equal(r.ok, false);
        if (!r.ok) {
          assert.equal(r.reason, reason);
          assert.doesNotMatch(r.message, /:p@|u:p/, "never repeats credentials of the URL");
        }
      }
    });
  }
  test("the message names the host and how to allow it", () => {
    const r = judgeOrganizationUrl("https://attacker.example/x", cloud);
    assert.ok(!r.ok);
    assert.match(r.message, /attacker\.example/);
    assert.match(r.message, /dev\.azure\.com, \*\.visualstudio\.com/);
    assert.match(r.message, /--azure-devops-hosts/);
  });
});

describe("authorities (rule 4)", () => {
  test("normalizeAuthority", () => {
    assert.deepEqual(normalizeAuthority("https://LOGIN.microsoftonline.com/"), {
      ok: true,
      value: "https://login.microsoftonline.com",
    });
    assert.deepEqual(normalizeAuthority("https://127.0.0.1:8443"), { ok: true, value: "https://127.0.0.1:8443" });
    assert.deepEqual(normalizeAuthority("https://host:443/adfs/"), { ok: true, value: "https://host/adfs" });
    for (const bad of ["http://login.microsoftonline.com", "https://u:p@host", "https://host?x", "not a url"]) {
      assert.equal(normalizeAuthority(bad).ok, false, bad);
    }
  });

  const allowed = [PUBLIC_CLOUD_AUTHORITY, "https://login.microsoftonline.us"];
  const cases: [string, string | undefined, string | null][] = [
    ["none named: the operator's default", undefined, PUBLIC_CLOUD_AUTHORITY],
    ["empty: the default", " ", PUBLIC_CLOUD_AUTHORITY],
    ["the public cloud, written differently", "https://Login.MicrosoftOnline.com/", PUBLIC_CLOUD_AUTHORITY],
    ["a sovereign cloud on the list", "https://login.microsoftonline.us", "https://login.microsoftonline.us"],
    ["another host", "https://attacker.example", null],
    ["http", "http://login.microsoftonline.com", null],
    ["another port", "https://login.microsoftonline.com:8443", null],
    ["a path below", "https://login.microsoftonline.com/evil", null],
  ];
  for (const [name, given, expected] of cases) {
    test(name, () => {
      const r = judgeAuthority(given, allowed);
      if (expected === null) {
        assert.equal(r.ok, false);
        if (!r.ok) {
          assert.equal(r.reason, "AuthorityHostNotAllowed");
          assert.match(r.message, /--entra-authority-hosts/);
        }
      } else {
        assert.deepEqual(r, { ok: true, value: expected });
      }
    });
  }
  test("with no authority allowed, even the default is refused", () => {
    assert.equal(judgeAuthority(undefined, []).ok, false);
  });
});
