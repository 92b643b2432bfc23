/**
 * Every version of the simulated control plane, pinned in one place.
 * The Go wrapper modules under ./go/ are generated from these (`npm run sim:gomod`);
 * a unit test fails when they disagree.
 */
export const versions = {
  /** k8s.io/kubernetes: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl. */
  kubernetes: "1.37.2",
  /** go.etcd.io/etcd/server/v3. */
  etcd: "3.6.16",
  /** helm.sh/helm/v3. */
  helm: "3.22.0",
} as const;

export type ControlPlaneVersions = typeof versions;

/** The binaries built from the wrapper modules, by module folder under ./go/. */
export const binariesByModule = {
  kubernetes: ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"],
  etcd: ["etcd"],
  helm: ["helm"],
} as const;

export type BinaryName = (typeof binariesByModule)[keyof typeof binariesByModule][number];
