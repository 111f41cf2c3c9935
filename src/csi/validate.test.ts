import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CsiError, GrpcStatus } from './errors.ts';
import { KeyedLocks } from './locks.ts';
import { validatePublish, validateStage, validateUnpublish, validateUnstage } from './validate.ts';
import { parseVolumeContext } from './volume-context.ts';

const ROOT = '/var/lib/kubelet';
const ROOTS = { kubeletDir: ROOT, mountRoot: '/runtime-mnt' };
const TARGET = `${ROOT}/pods/u1/volumes/kubernetes.io~csi/default-demo/mount`;
const CONTEXT = {
  fluid_path: '/runtime-mnt/tide/default/demo/tide-fuse',
  mount_type: 'fuse.tide',
  runtime_namespace: 'default',
  runtime_name: 'demo',
  mount_pod_node_selector_key: 'fluid.io/f-default-demo',
  mount_pod_node_selector_value: 'true',
};
const READER = { mount: {}, accessMode: { mode: 'MULTI_NODE_READER_ONLY' as const } };

function invalid(message: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof CsiError);
    assert.equal(error.code, 'ERR_CSI_INVALID_ARGUMENT');
    assert.equal(error.grpcCode, GrpcStatus.INVALID_ARGUMENT);
    assert.match(error.message, message);
    return true;
  };
}

test('publish checks the volume id, then the target, then the capability, then the context', () => {
  assert.throws(() => validatePublish({}, ROOTS), invalid(/volume_id is required/));
  assert.throws(() => validatePublish({ volumeId: 'v' }, ROOTS), invalid(/target_path is required/));
  assert.throws(
    () => validatePublish({ volumeId: 'v', targetPath: TARGET }, ROOTS),
    invalid(/volume_capability is required/),
  );
  assert.throws(
    () => validatePublish({ volumeId: 'v', targetPath: TARGET, volumeCapability: READER }, ROOTS),
    invalid(/volume_context.fluid_path is required/),
  );
  assert.throws(
    () => validatePublish({ volumeId: 'v', targetPath: '/etc/passwd', volumeCapability: READER }, ROOTS),
    invalid(/outside the kubelet directory/),
  );
  assert.throws(
    () => validatePublish({ volumeId: 'v', targetPath: `${ROOT}/../etc`, volumeCapability: READER }, ROOTS),
    invalid(/outside the kubelet directory/),
  );
  assert.throws(
    () =>
      validatePublish(
        {
          volumeId: 'v',
          targetPath: TARGET,
          volumeCapability: { block: {}, accessMode: { mode: 'MULTI_NODE_READER_ONLY' } },
        },
        ROOTS,
      ),
    invalid(/block is not supported/),
  );
  assert.throws(
    () =>
      validatePublish(
        {
          volumeId: 'v',
          targetPath: TARGET,
          volumeCapability: { mount: {}, accessMode: { mode: 'UNKNOWN' } },
        },
        ROOTS,
      ),
    invalid(/access_mode is required/),
  );
});

test('publish is read-only for reader modes or the readonly flag', () => {
  const base = { volumeId: 'v', targetPath: TARGET, volumeContext: CONTEXT };
  assert.equal(validatePublish({ ...base, volumeCapability: READER }, ROOTS).readOnly, true);
  const writer = { mount: {}, accessMode: { mode: 'SINGLE_NODE_WRITER' as const } };
  assert.equal(validatePublish({ ...base, volumeCapability: writer }, ROOTS).readOnly, false);
  assert.equal(validatePublish({ ...base, volumeCapability: writer, readonly: true }, ROOTS).readOnly, true);
});

test('stage needs the node label key; unstage and unpublish need only the id and a path', () => {
  const { mount_pod_node_selector_key: _, ...withoutKey } = CONTEXT;
  const stage = {
    volumeId: 'v',
    stagingTargetPath: `${ROOT}/plugins/x/globalmount`,
    volumeCapability: READER,
  };
  assert.throws(
    () => validateStage({ ...stage, volumeContext: withoutKey }, ROOTS),
    invalid(/mount_pod_node_selector_key is required/),
  );
  assert.deepEqual(validateStage({ ...stage, volumeContext: CONTEXT }, ROOTS).attributes.nodeLabel, {
    key: 'fluid.io/f-default-demo',
    value: 'true',
  });
  assert.throws(() => validateUnstage({ volumeId: 'v' }, ROOTS), invalid(/staging_target_path is required/));
  assert.throws(() => validateUnpublish({ targetPath: TARGET }, ROOTS), invalid(/volume_id is required/));
  assert.equal(validateUnpublish({ volumeId: 'v', targetPath: `${TARGET}/` }, ROOTS).targetPath, TARGET);
});

test('the volume context gives defaults and refuses bad attributes by name', () => {
  const parsed = parseVolumeContext({ fluid_path: '/runtime-mnt/x/' }, { requireNodeLabel: false });
  assert.equal(parsed.fluidPath, '/runtime-mnt/x');
  assert.equal(parsed.mountType, 'fuse.tide');
  assert.equal(parsed.cleanPolicy, 'OnRuntimeDeleted');
  assert.equal(parsed.dataset, undefined);
  assert.throws(
    () => parseVolumeContext({ fluid_path: 'relative' }, { requireNodeLabel: false }),
    invalid(/fluid_path must be/),
  );
  assert.throws(
    () =>
      validatePublish(
        {
          volumeId: 'v',
          targetPath: TARGET,
          volumeCapability: READER,
          volumeContext: { ...CONTEXT, fluid_path: '/etc' },
        },
        ROOTS,
      ),
    invalid(/fluid_path "\/etc" is outside the FUSE mount root \/runtime-mnt/),
  );
  assert.throws(
    () => parseVolumeContext({ fluid_path: '/x', fluid_sub_path: 'a/../../b' }, { requireNodeLabel: false }),
    invalid(/fluid_sub_path must stay inside/),
  );
  assert.throws(
    () =>
      parseVolumeContext({ fluid_path: '/x', fuse_clean_policy: 'Sometimes' }, { requireNodeLabel: false }),
    invalid(/fuse_clean_policy must be one of OnDemand, OnRuntimeDeleted, OnFuseChanged, got "Sometimes"/),
  );
});

test('a held lock makes a second operation fail with ABORTED and frees itself after', async () => {
  const locks = new KeyedLocks();
  let release: () => void = () => undefined;
  const first = locks.with('target:/a', 'publish', () => new Promise<void>((resolve) => (release = resolve)));
  await assert.rejects(
    locks.with('target:/a', 'publish again', () => Promise.resolve()),
    (error: unknown) => error instanceof CsiError && error.grpcCode === GrpcStatus.ABORTED,
  );
  await locks.with('target:/b', 'another target', () => Promise.resolve());
  release();
  await first;
  assert.equal(locks.isHeld('target:/a'), false);
  await assert.rejects(
    locks.with('target:/a', 'fail', () => Promise.reject(new Error('boom'))),
    /boom/,
  );
  assert.equal(locks.isHeld('target:/a'), false);
});
