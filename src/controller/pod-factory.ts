/**
 * The pod factory port: the builder of src/pods (agent pod from a template, capabilities, extra containers and
 * cache volumes), the patch that switches classic sidecars to the terminator image so they exit, and the
 * ExtraAgentContainers policy check the plan uses (the resource's policy, else the operator's default).
 */

import type { ExtraAgentContainersPolicy } from "../api/v1/index.ts";
import { buildPodForCreate } from "../pods/build.ts";
import { effectiveExtraAgentContainersPolicy, extraAgentContainersChecker } from "../pods/extra-containers.ts";
import { stopContainersPatch } from "../pods/stop.ts";
import type { PodFactory } from "./ports.ts";

export interface PodFactoryOptions {
  terminatorImage: string;
  /** The ExtraAgentContainers policy of resources that set none (`--extra-agent-containers-policy`). */
  defaultExtraAgentContainersPolicy?: ExtraAgentContainersPolicy | undefined;
}

export function createPodFactory(options: PodFactoryOptions): PodFactory {
  const defaultPolicy = options.defaultExtraAgentContainersPolicy;
  // One checker per spec object (specs stay while their resource's generation does: observe.ts, validateCached),
  // so the sharing of a pool can keep job matches per checker.
  const checkers = new WeakMap<object, ReturnType<PodFactory["extraAgentContainersChecker"]>>();
  return {
    build: (input) => buildPodForCreate(input, { defaultExtraAgentContainersPolicy: defaultPolicy }),
    stopSidecarsPatch: (containers) => stopContainersPatch(containers, options.terminatorImage),
    extraAgentContainersChecker: (spec) => {
      let checker = checkers.get(spec);
      if (checker === undefined) {
        const { policy, policySource } = effectiveExtraAgentContainersPolicy(spec.extraAgentContainers, defaultPolicy);
        checker = extraAgentContainersChecker(policy, policySource);
        checkers.set(spec, checker);
      }
      return checker;
    },
  };
}
