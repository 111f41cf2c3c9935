/** Fluid's pod labels and annotations the webhook reads and writes (Fluid `pkg/common`), unchanged. */

/** Pod label: inject the FUSE client as a sidecar (serverless pods). */
export const INJECT_SERVERLESS = 'serverless.fluid.io/inject';
/** Pod label: the deprecated spelling of INJECT_SERVERLESS, still honoured by Fluid. */
export const INJECT_FUSE_SIDECAR_DEPRECATED = 'fuse.sidecar.fluid.io/inject';
/** Pod label: schedule next to the cache and use the node's FUSE mount (serverful pods). */
export const INJECT_SERVERFUL = 'fuse.serverful.fluid.io/inject';
/** Pod label `false`: leave the pod alone. */
export const ENABLE_INJECTION = 'fluid.io/enable-injection';
/** Pod label the sidecar injection sets, so that a reinvocation does not inject twice. */
export const INJECT_DONE = 'done.sidecar.fluid.io/inject';
/** Pod label the sidecar injection sets; on a PVC it names the dataset it belongs to. */
export const MANAGED_BY = 'fluid.io/managed-by';
/** Pod label asking for an unprivileged sidecar (Fluid's "unprivileged" serverless platform). */
export const INJECT_UNPRIVILEGED = 'unprivileged.sidecar.fluid.io/inject';
/** Pod annotation naming the serverless platform. */
export const SERVERLESS_PLATFORM = 'serverless.fluid.io/platform';
/** Pod annotation: the sorted, comma-separated names of the datasets the pod uses. */
export const DATASETS_IN_USE = 'fluid.io/datasets-in-use';
/** Pod annotation: do not check that the datasets are Bound. */
export const SKIP_PRECHECK = 'sidecar.fluid.io/skip-precheck';
/** Pod annotation asking Fluid's FilePrefetcher for a prefetch container. */
export const FILE_PREFETCHER_INJECT = 'file-prefetcher.fluid.io/inject';
/** PVC label prefix that marks a dataset's claim (`fluid.io/s-<ns>-<name>`). */
export const STORAGE_LABEL_PREFIX = 'fluid.io/s-';
/** `fluid.io/dataset.<name>.sched`: with the value `required`, the pod must run where the cache is. */
export const SCHED_LABEL = /^fluid\.io\/dataset\.([A-Za-z0-9.-]*)\.sched$/;
/** Name of the injected FUSE container; `-<n>` is appended from the second one on. */
export const FUSE_CONTAINER_NAME = 'fluid-fuse';
/** Fluid's `fluid` value of `fluid.io/managed-by`. */
export const MANAGED_BY_VALUE = 'fluid';

/** Fluid's test for a label set to "true". */
export function isTrue(map: Readonly<Record<string, string>> | undefined, key: string): boolean {
  return map?.[key] === 'true';
}

/** A pod that asks for the FUSE sidecar (Fluid's `ServerlessEnabled`). */
export function isServerless(labels: Readonly<Record<string, string>> | undefined): boolean {
  return isTrue(labels, INJECT_SERVERLESS) || isTrue(labels, INJECT_FUSE_SIDECAR_DEPRECATED);
}
/** Pod label prefixes naming the dataset of each injected FUSE container (`…/<container>`). */
export const SIDECAR_DATASET_NAMESPACE_PREFIX = 'dataset-namespace.sidecar.fluid.io/';
export const SIDECAR_DATASET_NAME_PREFIX = 'dataset-name.sidecar.fluid.io/';
