/**
 * The operator's credential policy (pure): which credentials a resource may make the operator use, and where they
 * may be sent. Resources are written by many teams and served by one operator identity, so what the installer
 * configures decides, not the resource. The credentials port asks `judgeCredentialUse` before it reads a Secret or
 * asks for a token; a refusal becomes `Ready=False` with the verdict's reason, and an event.
 *
 * Rules:
 * 1. `spec.organizationUrl` must be allowed (src/azure-devops/endpoints.ts, rules 1 to 3): https, a host on the
 *    operator's list; else `InsecureOrganizationUrl` or `OrganizationUrlNotAllowed`.
 * 2. An `entraIdAuthentication` block is judged whenever it is present (whichever credential the operator then
 *    uses), so a block that could send a secret somewhere is never left unchecked.
 * 3. `workloadIdentity: {}` (no `serviceAccountName`) is the operator's own federated token: any identity that
 *    trusts the operator's ServiceAccount could be named by `clientId`. Only resources in the namespaces the
 *    installer lists may use it (`*`: every namespace); else `OperatorIdentityNotAllowed`.
 * 4. The Entra authority (the block's `authorityHost`, else the operator's default, the first allowed one) must be
 *    one the operator allows (endpoints.ts rule 4); else `AuthorityHostNotAllowed`. The verdict carries the
 *    authority to use, so the credential never falls back to anything the resource or the environment chose.
 */
import type { EntraIdAuthentication } from "../api/v1/index.ts";
import {
  DEFAULT_AZURE_DEVOPS_HOSTS,
  judgeAuthority,
  judgeOrganizationUrl,
  PUBLIC_CLOUD_AUTHORITY,
} from "../azure-devops/endpoints.ts";

/** `--operator-identity-namespaces *`: every namespace may use the operator's own identity. */
export const ALL_NAMESPACES = "*";

export interface CredentialPolicy {
  /** Host patterns an organization URL may name (endpoints.ts rule 3). */
  azureDevOpsHosts: readonly string[];
  /** Whether an organization URL may use plain http. */
  allowHttp: boolean;
  /** Normalised https URLs of the Entra authorities; the first is used when a resource names none. */
  authorityHosts: readonly string[];
  /** Namespaces whose resources may use the operator's own identity (`workloadIdentity: {}`); `*`: all. */
  operatorIdentityNamespaces: readonly string[];
}

/** Azure DevOps Services over https, the public cloud's authority, nobody may use the operator's identity. */
export const DEFAULT_CREDENTIAL_POLICY: CredentialPolicy = {
  azureDevOpsHosts: DEFAULT_AZURE_DEVOPS_HOSTS,
  allowHttp: false,
  authorityHosts: [PUBLIC_CLOUD_AUTHORITY],
  operatorIdentityNamespaces: [],
};

export interface CredentialUse {
  namespace: string;
  organizationUrl: string;
  entraIdAuthentication?: EntraIdAuthentication | undefined;
}

export type CredentialVerdict =
  | { ok: true /** The Entra authority to use, when the resource has an Entra ID block. */; authorityHost?: string }
  | { ok: false; reason: string; message: string };

/** Whether the operator may use the resource's credential as the resource says (rules 1 to 4). */
export function judgeCredentialUse(policy: CredentialPolicy, use: CredentialUse): CredentialVerdict {
  // 1. Where the credential goes.
  const url = judgeOrganizationUrl(use.organizationUrl, {
    hosts: policy.azureDevOpsHosts,
    allowHttp: policy.allowHttp,
  });
  if (!url.ok) return { ok: false, reason: url.reason, message: `spec.organizationUrl: ${url.message}` };
  // 2. An Entra ID block, when present.
  const entra = use.entraIdAuthentication;
  if (entra === undefined) return { ok: true };
  // 3. The operator's own identity.
  // (A block with neither credential, which validation refuses, would fall back to it too: judged the same.)
  if (entra.clientSecretRef === undefined && entra.workloadIdentity?.serviceAccountName === undefined) {
    const allowed = policy.operatorIdentityNamespaces;
    if (!allowed.includes(ALL_NAMESPACES) && !allowed.includes(use.namespace)) {
      return {
        ok: false,
        reason: "OperatorIdentityNotAllowed",
        message: `spec.entraIdAuthentication.workloadIdentity: {} would use the operator's own identity, which resources in namespace ${use.namespace} may not use (the installer grants it per namespace with --operator-identity-namespaces); name a ServiceAccount of this namespace (workloadIdentity.serviceAccountName) or use clientSecretRef`,
      };
    }
  }
  // 4. The authority the secret or assertion is sent to.
  const authority = judgeAuthority(entra.authorityHost, policy.authorityHosts);
  if (!authority.ok) {
    return {
      ok: false,
      reason: authority.reason,
      message: `spec.entraIdAuthentication.authorityHost: ${authority.message}`,
    };
  }
  return { ok: true, authorityHost: authority.value };
}
