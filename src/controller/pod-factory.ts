/**
 * The pod factory the reconciler uses: the builder of src/pods (agent pod from a template, capabilities and extra
 * containers) and the patch that switches classic sidecars to the terminator image so they exit.
 */
import { buildPodForCreate } from "../pods/build.ts";
import { stopContainersPatch } from "../pods/stop.ts";
import type { PodFactory } from "./ports.ts";

export function createPodFactory(options: { terminatorImage: string }): PodFactory {
  return {
    build: (input) => buildPodForCreate(input),
    stopSidecarsPatch: (containers) => stopContainersPatch(containers, options.terminatorImage),
  };
}
