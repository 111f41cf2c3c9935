import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SecretValue } from '../lib/index.ts';
import { parseS3Location } from './s3-config.ts';

const secret = (value: string) => new SecretValue(value);

test('an s3:// mount with Alluxio options gets an https endpoint and virtual-host addressing', () => {
  const location = parseS3Location({
    mountPoint: 's3://bucket/path/to/data/',
    options: {
      'alluxio.underfs.s3.region': 'eu-west-1',
      'alluxio.underfs.s3.endpoint': 's3.eu-west-1.amazonaws.com',
    },
    secrets: { 'aws.accessKeyId': secret('AKID'), 'aws.secretKey': secret('SK') },
  });
  assert.equal(location.bucket, 'bucket');
  assert.equal(location.prefix, 'path/to/data/');
  assert.equal(location.endpoint, 'https://s3.eu-west-1.amazonaws.com');
  assert.equal(location.region, 'eu-west-1');
  assert.equal(location.forcePathStyle, false);
  assert.equal(location.credentials?.secretAccessKey.reveal(), 'SK');
  assert.equal(location.description, 's3://bucket/path/to/data/');
});

test('path style follows disable.dns.buckets, s3.pathStyle, and defaults on for IP endpoints', () => {
  const base = { secrets: {}, mountPoint: 's3://b' };
  assert.equal(
    parseS3Location({
      ...base,
      options: { 's3.endpoint': 'minio.local:9000', 'alluxio.underfs.s3.disable.dns.buckets': 'true' },
    }).forcePathStyle,
    true,
  );
  assert.equal(
    parseS3Location({ ...base, options: { 's3.endpoint': 'http://127.0.0.1:9000' } }).forcePathStyle,
    true,
  );
  assert.equal(
    parseS3Location({ ...base, options: { 's3.endpoint': 'http://127.0.0.1:9000', 's3.pathStyle': 'false' } })
      .forcePathStyle,
    false,
  );
  const root = parseS3Location({ ...base, options: {} });
  assert.equal(root.prefix, '');
  assert.equal(root.endpoint, undefined);
  assert.equal(root.region, 'us-east-1');
  assert.equal(root.credentials, undefined);
});

test('oss:// and cos:// take their own option names and derive the region from the endpoint', () => {
  const oss = parseS3Location({
    mountPoint: 'oss://my-bucket/data',
    options: { 'fs.oss.endpoint': 'oss-cn-hangzhou-internal.aliyuncs.com' },
    secrets: { 'fs.oss.accessKeyId': secret('id'), 'fs.oss.accessKeySecret': secret('oss-secret') },
  });
  assert.equal(oss.endpoint, 'https://oss-cn-hangzhou-internal.aliyuncs.com');
  assert.equal(oss.region, 'oss-cn-hangzhou');
  assert.equal(oss.forcePathStyle, false);
  assert.deepEqual(
    oss.secrets.map((value) => value.reveal()),
    ['id', 'oss-secret'],
  );
  const cos = parseS3Location({
    mountPoint: 'cos://data-1250000000/x',
    options: { 'fs.cosn.endpoint': 'cos.ap-guangzhou.myqcloud.com', 'fs.cosn.userinfo.secretId': 'sid' },
    secrets: { 'fs.cosn.userinfo.secretKey': secret('skey') },
  });
  assert.equal(cos.region, 'ap-guangzhou');
  assert.equal(cos.bucket, 'data-1250000000');
  assert.equal(cos.credentials?.accessKeyId.reveal(), 'sid');
});

test('bad S3 mounts fail with ERR_UFS_BAD_CONFIG and never quote a secret', () => {
  assert.throws(() => parseS3Location({ mountPoint: 's3:///nobucket', options: {}, secrets: {} }), {
    code: 'ERR_UFS_BAD_CONFIG',
  });
  assert.throws(
    () => parseS3Location({ mountPoint: 'oss://b/p', options: {}, secrets: {} }),
    /fs\.oss\.endpoint/,
  );
  assert.throws(
    () =>
      parseS3Location({
        mountPoint: 's3://b/p',
        options: {},
        secrets: { 'aws.secretKey': secret('only-the-secret') },
      }),
    (error: Error) => {
      assert.equal((error as Error & { code: string }).code, 'ERR_UFS_BAD_CONFIG');
      assert.ok(!error.message.includes('only-the-secret'));
      return true;
    },
  );
  assert.throws(() => parseS3Location({ mountPoint: 's3://b/../x', options: {}, secrets: {} }), {
    code: 'ERR_UFS_BAD_CONFIG',
  });
});
