/**
 * The credentials port: turns what a resource names (a PAT Secret, or Entra ID with a client secret, a
 * ServiceAccount's federated token, or the operator's own workload identity) into an Azure DevOps `Credential`.
 *
 * Rules:
 * 1. `personalAccessTokenSecretName` wins: the Secret's key `pat` is read from the API server, and a successful read
 *    is kept (reconciles of resources naming the same Secret share it); after `secretTtlMs` (default 5 s) it is read
 *    again in the background while the kept value serves (`decideSecretRead`). A failed read is not kept (a Secret
 *    created or fixed is used at the next reconcile), and `refused` (the pool's polls were refused) drops the reads
 *    of that resource: a rotated PAT is used within seconds, at once if the old one was revoked. The same holds for
 *    the Secret of `clientSecretRef`.
 * 2. Else `entraIdAuthentication`: a client secret from `clientSecretRef` (key `clientSecret` by default), or a
 *    TokenRequest for `workloadIdentity.serviceAccountName` (audience `api://AzureADTokenExchange`) as the client
 *    assertion, or the operator's own federated token for `workloadIdentity: {}`.
 * 3. Entra ID credentials cache and refresh tokens, so they are kept per resource while the block and the secret
 *    stay the same (a changed secret makes a new credential). Each names its material (a fingerprint of the client
 *    secret, the ServiceAccount, or the operator's own identity): polls and clients are shared per identity AND
 *    material, so a rotated secret gets its own at once, and a resource that names the operator's client ID with
 *    some other secret never shares the operator's.
 * 4. Neither set: `NoCredentials`. A missing Secret, key or an unusable Entra ID block: a specific reason, never the
 *    secret's value.
 * 5. Before anything is read or requested, the operator's credential policy judges the resource (policy.ts: where
 *    the credential would go, the operator's own identity, the Entra authority). A refusal is returned as it is
 *    (its reason and message), and nothing is read, cached or sent. An Entra ID credential always gets the
 *    authority the policy chose, never one from the operator's environment.
 */
import { CLIENT_SECRET_KEY, type EntraIdAuthentication, PAT_SECRET_KEY } from "../api/v1/index.ts";
import { type Credential, identityKey, patCredential } from "../azure-devops/auth.ts";
import { entraIdCredential, entraIdOptionsFromSpec, type TokenRequestObservation } from "../azure-devops/entra-id.ts";
import { isNotFound, type KubeClient } from "../kube/client.ts";
import { errorMessage, type Logger } from "../runtime/logger.ts";
import { type CredentialPolicy, DEFAULT_CREDENTIAL_POLICY, judgeCredentialUse } from "./policy.ts";
import type { CredentialResult, CredentialsPort, Resource } from "./ports.ts";

type SecretRead = { ok: true; value: string } | { ok: false; reason: string; message: string };
type SecretObject = { data?: Record<string, string> };

/** A Secret read kept for the resources that name it (rule 1). */
interface KeptSecret {
  readonly at: number;
  readonly read: Promise<SecretObject>;
  /** The read succeeded. */
  settled: boolean;
  /** What it answered, once it did. */
  secret?: SecretObject;
  /** A newer read runs in the background. */
  refreshing: boolean;
}

/**
 * What a resolve does with the kept read of its Secret (rule 1):
 * 1. none kept: read it, and wait for the answer;
 * 2. kept less than `ttlMs` ago, or still in flight: use it;
 * 3. older, answered, nothing newer under way: use it, and read again in the background (a reconcile never waits
 *    for a Secret it has read before; the next one gets the new value);
 * 4. older with a newer read under way: use it.
 */
export function decideSecretRead(
  kept: Pick<KeptSecret, "at" | "settled" | "refreshing"> | undefined,
  now: number,
  ttlMs: number,
): "read" | "use" | "refresh" {
  if (kept === undefined) return "read";
  if (now - kept.at < ttlMs || !kept.settled) return "use";
  return kept.refreshing ? "use" : "refresh";
}

export interface CredentialResolverOptions {
  client: KubeClient;
  logger: Logger;
  /** How long a successful Secret read is used (rule 1); default 5 s. */
  secretTtlMs?: number;
  now?: () => number;
  /** Where credentials may be sent and who may use the operator's identity; default `DEFAULT_CREDENTIAL_POLICY`. */
  policy?: CredentialPolicy;
  /** Told about every Entra ID token request (request metrics). */
  onTokenRequest?: (observation: TokenRequestObservation) => void;
}

export class CredentialResolver implements CredentialsPort {
  readonly #client: KubeClient;
  readonly #logger: Logger;
  readonly #policy: CredentialPolicy;
  readonly #onTokenRequest: ((observation: TokenRequestObservation) => void) | undefined;
  /** Entra ID credentials by resource key (they cache and refresh their tokens). */
  readonly #entra = new Map<string, { fingerprint: string; credential: Credential }>();
  /** Secret reads by `namespace/name` (rule 1), and which of them each resource used. */
  readonly #secrets = new Map<string, KeptSecret>();
  readonly #secretsOf = new Map<string, Set<string>>();
  readonly #secretTtlMs: number;
  readonly #now: () => number;

  constructor(options: CredentialResolverOptions) {
    this.#client = options.client;
    this.#logger = options.logger;
    this.#secretTtlMs = options.secretTtlMs ?? 5_000;
    this.#now = options.now ?? Date.now;
    this.#policy = options.policy ?? DEFAULT_CREDENTIAL_POLICY;
    this.#onTokenRequest = options.onTokenRequest;
  }

  forget(key: string): void {
    this.#entra.delete(key);
    this.refused(key);
    this.#secretsOf.delete(key);
  }

  refused(key: string): void {
    for (const secret of this.#secretsOf.get(key) ?? []) this.#secrets.delete(secret);
  }

  /**
   * Answers at once (no promise) when what it needs was read before: most reconciles then run from start to end
   * without yielding to other work, so their duration is their own.
   */
  resolve(key: string, resource: Resource): CredentialResult | Promise<CredentialResult> {
    const ns = resource.metadata.namespace;
    const patSecret = resource.spec.personalAccessTokenSecretName;
    const entra = resource.spec.entraIdAuthentication;
    const verdict = judgeCredentialUse(this.#policy, {
      namespace: ns,
      organizationUrl: resource.spec.organizationUrl,
      entraIdAuthentication: entra,
    });
    if (!verdict.ok) {
      this.#entra.delete(key);
      return { ok: false, reason: verdict.reason, message: verdict.message };
    }
    if (patSecret) {
      const what = "spec.personalAccessTokenSecretName: the Azure DevOps personal access token";
      const asPat = (pat: SecretRead): CredentialResult =>
        pat.ok ? { ok: true, credential: patCredential(pat.value) } : pat;
      const kept = this.#keptSecret(key, ns, patSecret);
      if (kept !== undefined) return asPat(this.#secretKey(kept, ns, patSecret, PAT_SECRET_KEY, what));
      return this.#readSecretKey(key, ns, patSecret, PAT_SECRET_KEY, what).then(asPat);
    }
    if (entra) return this.#entraCredential(key, ns, entra, verdict.authorityHost);
    return {
      ok: false,
      reason: "NoCredentials",
      message: "set spec.personalAccessTokenSecretName or spec.entraIdAuthentication",
    };
  }

  /** The Secret as answered by a kept read that serves now (rule 1), or undefined: then `#readSecret`. */
  #keptSecret(resourceKey: string, ns: string, name: string): SecretObject | undefined {
    const kept = this.#secrets.get(`${ns}/${name}`);
    if (kept?.secret === undefined || decideSecretRead(kept, this.#now(), this.#secretTtlMs) === "read") return;
    return this.#readSecret(resourceKey, ns, name) === kept.read ? kept.secret : undefined;
  }

  /** The Secret, from a read made less than `secretTtlMs` ago or from a new one (rule 1). */
  #readSecret(resourceKey: string, ns: string, name: string): Promise<SecretObject> {
    const id = `${ns}/${name}`;
    const used = this.#secretsOf.get(resourceKey) ?? new Set<string>();
    this.#secretsOf.set(resourceKey, used.add(id));
    const kept = this.#secrets.get(id);
    const decision = decideSecretRead(kept, this.#now(), this.#secretTtlMs);
    if (kept && decision !== "read") {
      if (decision === "refresh") this.#startRead(id, ns, name, kept);
      return kept.read;
    }
    return this.#startRead(id, ns, name).read;
  }

  /** A GET of the Secret, kept under `id` when it succeeds; `behind`: the entry it refreshes (served meanwhile). */
  #startRead(id: string, ns: string, name: string, behind?: KeptSecret): KeptSecret {
    const read = this.#client.request<SecretObject>({
      path: `/api/v1/namespaces/${ns}/secrets/${encodeURIComponent(name)}`,
    });
    const entry: KeptSecret = { at: this.#now(), read, settled: false, refreshing: false };
    if (behind) behind.refreshing = true;
    else this.#secrets.set(id, entry);
    read.then(
      (secret) => {
        entry.settled = true;
        entry.secret = secret;
        // Replaces what it refreshes, unless that was dropped meanwhile (`refused`, a failed read).
        if (behind && this.#secrets.get(id) === behind) this.#secrets.set(id, entry);
      },
      () => {
        const current = this.#secrets.get(id);
        if (current === entry || current === behind) this.#secrets.delete(id);
      },
    );
    return entry;
  }

  async #readSecretKey(resourceKey: string, ns: string, name: string, key: string, what: string): Promise<SecretRead> {
    try {
      return this.#secretKey(await this.#readSecret(resourceKey, ns, name), ns, name, key, what);
    } catch (err) {
      return isNotFound(err)
        ? { ok: false, reason: "SecretNotFound", message: `Secret ${ns}/${name} (${what}) not found` }
        : {
            ok: false,
            reason: "SecretUnreadable",
            message: `Secret ${ns}/${name} could not be read: ${errorMessage(err)}`,
          };
    }
  }

  /** The key's value in the Secret as read. */
  #secretKey(secret: SecretObject, ns: string, name: string, key: string, what: string): SecretRead {
    const value = secret.data?.[key];
    const text = value === undefined ? "" : Buffer.from(value, "base64").toString("utf8").trim();
    if (text) return { ok: true, value: text };
    // Not kept: the key may be added any moment (rule 1).
    this.#secrets.delete(`${ns}/${name}`);
    return {
      ok: false,
      reason: "SecretKeyMissing",
      message: `Secret ${ns}/${name} has no non-empty key "${key}" (${what})`,
    };
  }

  async #entraCredential(
    key: string,
    ns: string,
    given: EntraIdAuthentication,
    authorityHost: string | undefined,
  ): Promise<CredentialResult> {
    const entra = authorityHost === undefined ? given : { ...given, authorityHost };
    const resolved: { clientSecret?: string; clientAssertion?: () => Promise<string> } = {};
    // The operator's own identity unless a secret or a ServiceAccount names other material (rule 3: keyed by it).
    let materialName = "operator-identity";
    let fingerprint = JSON.stringify([entra]);
    if (entra.clientSecretRef) {
      const ref = entra.clientSecretRef;
      const what = "spec.entraIdAuthentication.clientSecretRef";
      const secret = await this.#readSecretKey(key, ns, ref.name, ref.key ?? CLIENT_SECRET_KEY, what);
      if (!secret.ok) return secret;
      resolved.clientSecret = secret.value;
      fingerprint = JSON.stringify([entra, identityKey(patCredential(secret.value))]);
    } else if (entra.workloadIdentity?.serviceAccountName) {
      resolved.clientAssertion = this.#serviceAccountToken(ns, entra.workloadIdentity.serviceAccountName);
      materialName = `sa:${ns}/${entra.workloadIdentity.serviceAccountName}`;
    }
    const cached = this.#entra.get(key);
    if (cached?.fingerprint === fingerprint) return { ok: true, credential: cached.credential };
    try {
      const credential = entraIdCredential({
        ...entraIdOptionsFromSpec(entra, resolved, { logger: this.#logger }),
        materialName,
        ...(this.#onTokenRequest ? { onTokenRequest: this.#onTokenRequest } : {}),
      });
      this.#entra.set(key, { fingerprint, credential });
      return { ok: true, credential };
    } catch (err) {
      return { ok: false, reason: "EntraIdMisconfigured", message: errorMessage(err) };
    }
  }

  /** The ServiceAccount's token with audience api://AzureADTokenExchange: the federated assertion. */
  #serviceAccountToken(ns: string, serviceAccount: string): () => Promise<string> {
    return async () => {
      const answer = await this.#client.request<{ status: { token: string } }>({
        method: "POST",
        path: `/api/v1/namespaces/${ns}/serviceaccounts/${encodeURIComponent(serviceAccount)}/token`,
        body: {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenRequest",
          spec: { audiences: ["api://AzureADTokenExchange"], expirationSeconds: 3600 },
        },
      });
      return answer.status.token;
    };
  }
}
