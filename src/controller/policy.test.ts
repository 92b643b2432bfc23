import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { EntraIdAuthentication } from "../api/v1/index.ts";
import { type CredentialPolicy, DEFAULT_CREDENTIAL_POLICY, judgeCredentialUse } from "./policy.ts";

const tenantId = "contoso.onmicrosoft.com";
const clientId = "00000000-0000-0000-0000-000000000001";
const own: EntraIdAuthentication = { tenantId, clientId, workloadIdentity: {} };
const teamAccount: EntraIdAuthentication = { tenantId, clientId, workloadIdentity: { serviceAccountName: "builds" } };
const secret: EntraIdAuthentication = { tenantId, clientId, clientSecretRef: { name: "sp", key: "clientSecret" } };
const cloudOrg = "https://dev.azure.com/contoso";

const platform: CredentialPolicy = {
  ...DEFAULT_CREDENTIAL_POLICY,
  operatorIdentityNamespaces: ["platform"],
  authorityHosts: ["https://login.microsoftonline.com", "https://login.microsoftonline.us"],
};
const everyone: CredentialPolicy = { ...DEFAULT_CREDENTIAL_POLICY, operatorIdentityNamespaces: ["*"] };

describe("judgeCredentialUse", () => {
  const cases: {
    name: string;
    policy: CredentialPolicy;
    namespace?: string;
    organizationUrl?: string;
    entra?: EntraIdAuthentication;
    expect: string | { authorityHost?: string };
  }[] = [
    // Rule 1
    { name: "a PAT for Azure DevOps Services", policy: DEFAULT_CREDENTIAL_POLICY, expect: {} },
    {
      name: "a PAT sent to another host",
      policy: DEFAULT_CREDENTIAL_POLICY,
      organizationUrl: "https://attacker.example/contoso",
      expect: "OrganizationUrlNotAllowed",
    },
    {
      name: "a PAT over http",
      policy: DEFAULT_CREDENTIAL_POLICY,
      organizationUrl: "http://dev.azure.com/contoso",
      expect: "InsecureOrganizationUrl",
    },
    {
      name: "the organization URL is judged before the Entra ID block",
      policy: DEFAULT_CREDENTIAL_POLICY,
      organizationUrl: "https://attacker.example/contoso",
      entra: own,
      expect: "OrganizationUrlNotAllowed",
    },
    // Rule 3
    {
      name: "the operator's identity, by default",
      policy: DEFAULT_CREDENTIAL_POLICY,
      entra: own,
      expect: "OperatorIdentityNotAllowed",
    },
    {
      name: "the operator's identity in a listed namespace",
      policy: platform,
      namespace: "platform",
      entra: own,
      expect: { authorityHost: "https://login.microsoftonline.com" },
    },
    {
      name: "the operator's identity in another namespace",
      policy: platform,
      namespace: "team-a",
      entra: own,
      expect: "OperatorIdentityNotAllowed",
    },
    {
      name: "the operator's identity with *",
      policy: everyone,
      namespace: "team-a",
      entra: own,
      expect: { authorityHost: "https://login.microsoftonline.com" },
    },
    {
      name: "a block with no credential at all falls back to the operator's identity: judged as such",
      policy: DEFAULT_CREDENTIAL_POLICY,
      entra: { tenantId, clientId },
      expect: "OperatorIdentityNotAllowed",
    },
    {
      name: "a ServiceAccount of the resource's namespace is not the operator's identity",
      policy: DEFAULT_CREDENTIAL_POLICY,
      entra: teamAccount,
      expect: { authorityHost: "https://login.microsoftonline.com" },
    },
    {
      name: "a client secret",
      policy: DEFAULT_CREDENTIAL_POLICY,
      entra: secret,
      expect: { authorityHost: "https://login.microsoftonline.com" },
    },
    // Rule 4
    {
      name: "a client secret sent to another authority",
      policy: DEFAULT_CREDENTIAL_POLICY,
      entra: { ...secret, authorityHost: "https://attacker.example" },
      expect: "AuthorityHostNotAllowed",
    },
    {
      name: "a ServiceAccount token sent to another authority",
      policy: DEFAULT_CREDENTIAL_POLICY,
      entra: { ...teamAccount, authorityHost: "https://attacker.example/" },
      expect: "AuthorityHostNotAllowed",
    },
    {
      name: "the operator's token sent to another authority, from an allowed namespace",
      policy: platform,
      namespace: "platform",
      entra: { ...own, authorityHost: "https://attacker.example" },
      expect: "AuthorityHostNotAllowed",
    },
    {
      name: "an http authority",
      policy: DEFAULT_CREDENTIAL_POLICY,
      entra: { ...secret, authorityHost: "http://login.microsoftonline.com" },
      expect: "AuthorityHostNotAllowed",
    },
    {
      name: "a sovereign cloud the operator allows",
      policy: platform,
      entra: { ...secret, authorityHost: "https://login.microsoftonline.us/" },
      expect: { authorityHost: "https://login.microsoftonline.us" },
    },
    {
      name: "the operator's default is its first authority",
      policy: { ...platform, authorityHosts: ["https://login.chinacloudapi.cn"] },
      entra: secret,
      expect: { authorityHost: "https://login.chinacloudapi.cn" },
    },
    // Rule 2
    {
      name: "an Entra ID block beside a PAT is judged too",
      policy: DEFAULT_CREDENTIAL_POLICY,
      entra: { ...secret, authorityHost: "https://attacker.example" },
      expect: "AuthorityHostNotAllowed",
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const verdict = judgeCredentialUse(c.policy, {
        namespace: c.namespace ?? "team-a",
        organizationUrl: c.organizationUrl ?? cloudOrg,
        ...(c.entra ? { entraIdAuthentication: c.entra } : {}),
      });
      if (typeof c.expect === "string") {
        assert.equal(verdict.ok, false);
        if (!verdict.ok) {
          assert.equal(verdict.reason, c.expect);
          assert.match(verdict.message, /^spec\.(organizationUrl|entraIdAuthentication)/, "names the field");
        }
      } else {
        assert.deepEqual(verdict, { ok: true, ...c.expect });
      }
    });
  }

  test("the refusal of the operator's identity names the namespace and the way out", () => {
    const v = judgeCredentialUse(DEFAULT_CREDENTIAL_POLICY, {
      namespace: "team-a",
      organizationUrl: cloudOrg,
      entraIdAuthentication: own,
    });
    assert.ok(!v.ok);
    assert.match(v.message, /namespace team-a/);
    assert.match(v.message, /--operator-identity-namespaces/);
    assert.match(v.message, /serviceAccountName|clientSecretRef/);
  });
});
