/**
 * Stopping classic sidecars once the agent container has terminated, so the pod reaches a final phase.
 *
 * A running pod's containers can only have their `image` changed. Changing it makes the kubelet stop the container
 * (SIGTERM, preStop hook, grace period, as for any stop) and start it again from the new image whatever the
 * restartPolicy; the "terminator" image ends at once, and with `restartPolicy: Never` the container stays
 * terminated. The original operator swapped to an image name that does not exist, which ends in a pull error; a
 * real, tiny image lets the container end cleanly (and if it cannot be pulled, the effect is the original's).
 *
 * The default is `hello-world`: a scratch image holding one static binary that prints a line and exits 0. It has no
 * shell and no other program, so a sidecar whose `command` is `sleep infinity` or a shell loop cannot keep running
 * under it: the runtime fails to start that command and the container ends (exit code 128, StartError). An image
 * with a shell (busybox, alpine) would run such commands again, forever.
 *
 * Native sidecars (init containers with restartPolicy Always) need none of this: the kubelet stops them itself.
 * Pure: builds patches, sends nothing.
 */
import { isImageReference } from "./extra-containers.ts";

/** The default image stopped containers are switched to. */
export const DEFAULT_TERMINATOR_IMAGE = "docker.io/library/hello-world:latest";

/** Checks a configured terminator image (default when omitted); throws a RangeError for an unusable one. */
export function resolveTerminatorImage(image?: string): string {
  if (image === undefined || image.trim() === "") return DEFAULT_TERMINATOR_IMAGE;
  const trimmed = image.trim();
  if (!isImageReference(trimmed)) {
    throw new RangeError(`terminator image ${JSON.stringify(image)} is not an image reference`);
  }
  return trimmed;
}

/** A strategic-merge patch for a pod that changes only the image of the named containers. */
export interface StopContainersPatch {
  spec: { containers: { name: string; image: string }[] };
}

/**
 * The strategic-merge patch (`application/strategic-merge-patch+json`) that switches the named containers to the
 * terminator image. Containers merge by name, so nothing but their `image` changes; names appear once.
 */
export function stopContainersPatch(
  containers: readonly string[],
  terminatorImage: string = DEFAULT_TERMINATOR_IMAGE,
): StopContainersPatch {
  return {
    spec: { containers: [...new Set(containers)].map((name) => ({ name, image: terminatorImage })) },
  };
}
