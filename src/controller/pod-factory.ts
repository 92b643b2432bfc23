/**
 * The pod factory port: the builder of src/pods (agent pod from a template, capabilities, extra containers and
 * cache volumes), the patch that switches classic sidecars to the terminator image so they exit, and the
 * ExtraAgentContainers policy check the plan uses.
 */
import { buildPodForCreate } from "../pods/build.ts";
import { extraAgentContainersChecker } from "../pods/extra-containers.ts";
import { stopContainersPatch } from "../pods/stop.ts";
import type { PodFactory } from "./ports.ts";

export function createPodFactory(options: { terminatorImage: string }): PodFactory {
  return {
    build: (input) => buildPodForCreate(input),
    stopSidecarsPatch: (containers) => stopContainersPatch(containers, options.terminatorImage),
    extraAgentContainersChecker: (spec) => extraAgentContainersChecker(spec.extraAgentContainers),
  };
}
