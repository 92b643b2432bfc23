/**
 * The pod factory the reconciler uses: builds agent pods (see src/pods for the full builder) and the patch that
 * stops classic sidecars by switching them to the terminator image.
 */
import { PAT_SECRET_KEY } from "../api/v1/index.ts";
import { canonicalCapabilities, capabilitySetKey } from "../scaling/naming.ts";
import { annotations, labels, managedByValue } from "./keys.ts";
import type { PodBuildInput, PodFactory } from "./ports.ts";

interface ContainerLike {
  name: string;
  env?: { name: string }[];
  [k: string]: unknown;
}

export function createPodFactory(options: { terminatorImage: string }): PodFactory {
  return {
    build(input: PodBuildInput) {
      const { resource, create, podName } = input;
      const template = resource.spec.podsWithCapabilities[create.templateIndex];
      if (!template)
        return { ok: false, reason: "TemplateGone", message: `template ${create.templateIndex} no longer exists` };
      const tpl = structuredClone(template.podTemplateSpec) as {
        metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
        spec: { containers: ContainerLike[]; restartPolicy?: string; [k: string]: unknown };
      };
      const warnings: string[] = [];
      if (tpl.spec.restartPolicy && tpl.spec.restartPolicy !== "Never") {
        warnings.push(
          `restartPolicy ${tpl.spec.restartPolicy} of the pod template replaced by Never (agents run once)`,
        );
      }
      const [agent, ...rest] = tpl.spec.containers;
      if (!agent) return { ok: false, reason: "InvalidTemplate", message: "the pod template has no container" };
      const own = new Set((agent.env ?? []).map((e) => e.name));
      const capabilityEnv = Object.entries(create.agentCapabilities)
        .filter(([name]) => !own.has(name))
        .map(([name, value]) => ({ name, value }));
      agent.env = [
        ...(agent.env ?? []).filter((e) => !["AZP_AGENT_NAME", "AZP_URL", "AZP_POOL", "AZP_TOKEN"].includes(e.name)),
        { name: "AZP_AGENT_NAME", value: podName },
        { name: "AZP_URL", value: resource.spec.organizationUrl },
        { name: "AZP_POOL", value: resource.spec.poolName },
        {
          name: "AZP_TOKEN",
          valueFrom: { secretKeyRef: { name: resource.spec.personalAccessTokenSecretName ?? "", key: PAT_SECRET_KEY } },
        },
        ...capabilityEnv,
      ] as { name: string }[];
      const podAnnotations: Record<string, string> = {
        ...tpl.metadata?.annotations,
        ...(template.podAnnotations as Record<string, string> | undefined),
        [annotations.capabilities]: canonicalCapabilities(create.agentCapabilities),
      };
      if (create.forRequestIds.length > 0) podAnnotations[annotations.createdFor] = create.forRequestIds.join(",");
      if (create.extraAgentContainers !== null)
        podAnnotations[annotations.extraAgentContainers] = create.extraAgentContainers;
      const pod = {
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name: podName,
          namespace: resource.metadata.namespace,
          labels: {
            ...tpl.metadata?.labels,
            ...(template.podLabels as Record<string, string> | undefined),
            [labels.managedBy]: managedByValue,
            [labels.resource]: resource.metadata.name,
            [labels.template]: capabilitySetKey(template.capabilities as Record<string, string>),
          },
          annotations: podAnnotations,
          ownerReferences: [
            {
              apiVersion: "azurepipelines.k8s.scaler.io/v1",
              kind: "AutoScaledAgent",
              name: resource.metadata.name,
              uid: resource.metadata.uid,
              controller: true,
              blockOwnerDeletion: true,
            },
          ],
        },
        spec: { ...tpl.spec, restartPolicy: "Never", containers: [agent, ...rest] },
      };
      return { ok: true, pod, warnings };
    },
    stopSidecarsPatch(containers) {
      return { spec: { containers: containers.map((name) => ({ name, image: options.terminatorImage })) } };
    },
  };
}
