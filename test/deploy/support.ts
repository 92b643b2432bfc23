/**
 * Helpers for the installation tests: the project-built helm and kubectl, rendering the chart and the Kustomize
 * manifests into objects, server-side apply through kubectl, and access reviews for a ServiceAccount.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { type Binaries, ensureBinaries } from "../../sim/control-plane/build.ts";
import { versions } from "../../sim/control-plane/versions.ts";
import type { KubeClient } from "../../src/kube/client.ts";

export const repoRoot = join(import.meta.dirname, "..", "..");
export const chartDir = join(repoRoot, "charts", "azure-pipelines-k8s-agent-scaler");
export const CRD_FILE = "azurepipelines.k8s.scaler.io_autoscaledagents.yaml";
/** The namespace and name prefix of config/default. */
export const KUSTOMIZE_NAMESPACE = "azure-pipelines-k8s-agent-scaler-system";
export const KUSTOMIZE_PREFIX = "azure-pipelines-k8s-agent-scaler-";
/** A node label no node has: the operator Deployments applied by the tests never get a pod running. */
export const NO_NODE_SELECTOR = { "deploy-test.azure-pipelines-k8s-agent-scaler.io/no-node": "true" };

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are free-form JSON
export type Obj = Record<string, any>;

let binaries: Promise<Binaries> | undefined;
/** helm and kubectl as the project builds them (cached after the first build). */
export function tools(): Promise<Binaries> {
  binaries ??= ensureBinaries({ log: (line) => process.stderr.write(`${line}\n`) });
  return binaries;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], options: { input?: string; cwd?: string } = {}): RunResult {
  const r = spawnSync(cmd, args, {
    encoding: "utf8",
    input: options.input,
    cwd: options.cwd ?? repoRoot,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, HELM_CACHE_HOME: helmHome("cache"), HELM_CONFIG_HOME: helmHome("config") },
  });
  if (r.error) throw r.error;
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs and throws with the output when the command fails. */
export function runOk(cmd: string, args: string[], options: { input?: string; cwd?: string } = {}): string {
  const r = run(cmd, args, options);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} exited with ${r.code}\n${r.stderr}${r.stdout}`);
  }
  return r.stdout;
}

/** Temporary folders of this process, removed when it exits. */
const temporary: string[] = [];
process.once("exit", () => {
  for (const dir of temporary) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temporary.push(dir);
  return dir;
}

let helmDir: string | undefined;
/** Helm's cache and config folders, private to this process (no repositories, nothing of the user's). */
function helmHome(kind: string): string {
  helmDir ??= tempDir("deploy-test-helm-");
  return join(helmDir, kind);
}

export function parseYamlDocuments(text: string): Obj[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`invalid YAML: ${d.errors[0]?.message}`);
      return d.toJS() as Obj | null;
    })
    .filter((o): o is Obj => o !== null && typeof o === "object");
}

/**
 * The Kubernetes version the chart is rendered for. The project's helm binary is built without helm's
 * Kubernetes-version ldflags (it would assume v1.20.0), so the tests name the version they run against.
 */
export const KUBE_VERSION = versions.kubernetes;

export interface HelmRender {
  release?: string;
  namespace?: string;
  valuesFiles?: string[];
  values?: Obj;
  set?: string[];
  includeCrds?: boolean;
}

function valuesArgs(options: HelmRender): string[] {
  const args: string[] = [];
  for (const f of options.valuesFiles ?? []) args.push("-f", f);
  if (options.values) args.push("-f", writeTemp("values.yaml", JSON.stringify(options.values)));
  for (const s of options.set ?? []) args.push("--set", s);
  return args;
}

export function helmTemplateArgs(options: HelmRender): string[] {
  return [
    "template",
    options.release ?? "test",
    chartDir,
    "--namespace",
    options.namespace ?? "operators",
    "--kube-version",
    KUBE_VERSION,
    ...(options.includeCrds ? ["--include-crds"] : []),
    ...valuesArgs(options),
  ];
}

export async function helmTemplate(options: HelmRender = {}): Promise<Obj[]> {
  const { helm } = await tools();
  return parseYamlDocuments(runOk(helm, helmTemplateArgs(options)));
}

/** `helm template` expected to fail; returns its error output. */
export async function helmTemplateFails(options: HelmRender): Promise<string> {
  const { helm } = await tools();
  const r = run(helm, helmTemplateArgs(options));
  if (r.code === 0) throw new Error(`helm template succeeded with ${JSON.stringify(options)}`);
  return r.stderr;
}

export async function helmLint(options: HelmRender = {}): Promise<RunResult> {
  const { helm } = await tools();
  return run(helm, ["lint", chartDir, "--strict", "--kube-version", KUBE_VERSION, ...valuesArgs(options)]);
}

export async function kustomize(dir: string): Promise<Obj[]> {
  const { kubectl } = await tools();
  return parseYamlDocuments(runOk(kubectl, ["kustomize", dir]));
}

let filesDir: string | undefined;
let tempCount = 0;
export function writeTemp(name: string, text: string): string {
  filesDir ??= tempDir("deploy-test-");
  const path = join(filesDir, `${++tempCount}-${name}`);
  writeFileSync(path, text);
  return path;
}

export function find(objs: Obj[], kind: string, name?: string, namespace?: string): Obj {
  const hits = objs.filter(
    (o) =>
      o.kind === kind &&
      (name === undefined || o.metadata?.name === name) &&
      (namespace === undefined || o.metadata?.namespace === namespace),
  );
  if (hits.length !== 1) {
    const all = objs.map((o) => `${o.kind} ${o.metadata?.namespace ?? ""}/${o.metadata?.name}`).join(", ");
    throw new Error(`expected one ${kind} ${namespace ?? ""}/${name ?? "*"}, found ${hits.length} among: ${all}`);
  }
  return hits[0] as Obj;
}

export const kindsAndNames = (objs: Obj[]) =>
  objs.map((o) => `${o.kind} ${o.metadata?.namespace ? `${o.metadata.namespace}/` : ""}${o.metadata?.name}`).sort();

/**
 * Names the API server would refuse: Services (and Namespaces) are DNS labels of at most 63 characters, everything
 * else a DNS subdomain of at most 253. `headroom` reserves room for a longer release name or name prefix.
 */
export function invalidNames(objs: Obj[], headroom = 0): string[] {
  const label = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
  const subdomain = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
  return objs.flatMap((o) => {
    const name = String(o.metadata?.name ?? "");
    const isLabel = o.kind === "Service" || o.kind === "Namespace";
    const ok = isLabel ? label.test(name) && name.length + headroom <= 63 : subdomain.test(name) && name.length <= 253;
    return ok ? [] : [`${o.kind} ${name} (${name.length} characters)`];
  });
}

/** The operator container's environment, with the downward-API fields the kubelet would fill in. */
export function containerEnv(deployment: Obj, pod = { name: "operator-pod-0", namespace: "" }): NodeJS.ProcessEnv {
  const container = (deployment.spec.template.spec.containers as Obj[]).find((c) => c.name === "manager") as Obj;
  const env: NodeJS.ProcessEnv = {};
  for (const e of (container.env ?? []) as Obj[]) {
    if (e.valueFrom?.fieldRef?.fieldPath === "metadata.name") env[e.name] = pod.name;
    else if (e.valueFrom?.fieldRef?.fieldPath === "metadata.namespace")
      env[e.name] = pod.namespace || deployment.metadata.namespace;
    else if (e.valueFrom) throw new Error(`unexpected valueFrom in ${e.name}`);
    else env[e.name] = String(e.value ?? "");
  }
  return env;
}

/** Server-side apply of objects with the project-built kubectl, as an installer would run it. */
export async function applyServerSide(kubeconfig: string, objs: Obj[], fieldManager: string): Promise<string> {
  const { kubectl } = await tools();
  const file = writeTemp("apply.yaml", objs.map((o) => JSON.stringify(o)).join("\n---\n"));
  return runOk(kubectl, [
    "--kubeconfig",
    kubeconfig,
    "apply",
    "--server-side",
    `--field-manager=${fieldManager}`,
    "-f",
    file,
  ]);
}

export interface Access {
  verb: string;
  resource: string;
  group?: string;
  namespace?: string;
  name?: string;
  subresource?: string;
}

export const describeAccess = (a: Access) =>
  `${a.verb} ${a.group ? `${a.group}/` : ""}${a.resource}${a.subresource ? `/${a.subresource}` : ""}${
    a.name ? ` ${a.name}` : ""
  } in ${a.namespace ? `namespace ${a.namespace}` : "all namespaces / cluster"}`;

/** Asks the API server, as the client's own identity, whether it may do `a` (SelfSubjectAccessReview). */
export async function selfCan(client: KubeClient, a: Access): Promise<boolean> {
  const review = await client.request<Obj>({
    method: "POST",
    path: "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
    body: {
      apiVersion: "authorization.k8s.io/v1",
      kind: "SelfSubjectAccessReview",
      spec: {
        resourceAttributes: {
          verb: a.verb,
          group: a.group ?? "",
          resource: a.resource,
          namespace: a.namespace ?? "",
          name: a.name ?? "",
          subresource: a.subresource ?? "",
        },
      },
    },
  });
  return review.status?.allowed === true;
}

/** Checks every access; returns the ones whose answer differs from `expected`, described. */
export async function accessMismatches(client: KubeClient, table: [Access, boolean][]): Promise<string[]> {
  const wrong: string[] = [];
  for (const [access, expected] of table) {
    const allowed = await selfCan(client, access);
    if (allowed !== expected) wrong.push(`${expected ? "cannot" : "can"} ${describeAccess(access)}`);
  }
  return wrong;
}

/**
 * The documented values: dotted paths of the schema's properties that have no properties of their own (objects
 * passed through as they are, like `resources`, are one value).
 */
export function schemaValuePaths(schema: Obj, prefix = ""): string[] {
  const out: string[] = [];
  for (const [key, node] of Object.entries((schema.properties ?? {}) as Obj)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (node.properties && node.additionalProperties === false) out.push(...schemaValuePaths(node, path));
    else out.push(path);
  }
  return out;
}
