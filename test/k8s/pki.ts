/**
 * Throw-away PKI for test clusters and webhook servers, made with the `openssl` CLI
 * (node:crypto cannot issue X.509 certificates). EC P-256 keys: fast to generate, and
 * accepted by every Kubernetes component for serving, client auth and token signing.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface KeyPairFiles {
  certPath: string;
  keyPath: string;
  certPem: string;
  keyPem: string;
}

export interface IssueOptions {
  /** File stem in `dir`: `<name>.crt`, `<name>.key`. */
  name: string;
  commonName: string;
  /** Subject O=; `system:masters` makes a cluster-admin client certificate. */
  organization?: string | undefined;
  dnsNames?: readonly string[] | undefined;
  ipAddresses?: readonly string[] | undefined;
  usage: 'server' | 'client' | 'server+client';
  signal?: AbortSignal | undefined;
}

async function openssl(args: readonly string[], cwd: string, signal: AbortSignal | undefined): Promise<void> {
  try {
    await run('openssl', args, { cwd, signal, encoding: 'utf8' });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args[0] ?? ''} failed in ${cwd}: ${stderr.trim()}`, { cause: error });
  }
}

async function readPair(dir: string, name: string): Promise<KeyPairFiles> {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  return {
    certPath,
    keyPath,
    certPem: await readFile(certPath, 'utf8'),
    keyPem: await readFile(keyPath, 'utf8'),
  };
}

/** A CA that only lives as long as `dir`. */
export class TestCa {
  readonly dir: string;
  readonly files: KeyPairFiles;

  private constructor(dir: string, files: KeyPairFiles) {
    this.dir = dir;
    this.files = files;
  }

  /** Creates `<dir>/<name>.crt` and `.key`, a self-signed CA valid for two days. */
  static async create(
    dir: string,
    options: { name: string; commonName: string; signal?: AbortSignal | undefined },
  ): Promise<TestCa> {
    await openssl(
      [
        'req',
        '-x509',
        '-new',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        `${options.name}.key`,
        '-out',
        `${options.name}.crt`,
        '-days',
        '2',
        '-subj',
        `/CN=${options.commonName}`,
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
      ],
      dir,
      options.signal,
    );
    return new TestCa(dir, await readPair(dir, options.name));
  }

  /** Issues a leaf certificate signed by this CA into the CA's directory. */
  async issue(options: IssueOptions): Promise<KeyPairFiles> {
    const subject = `${options.organization === undefined ? '' : `/O=${options.organization}`}/CN=${options.commonName}`;
    await openssl(
      [
        'req',
        '-new',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        `${options.name}.key`,
        '-out',
        `${options.name}.csr`,
        '-subj',
        subject,
      ],
      this.dir,
      options.signal,
    );
    const sans = [
      ...(options.dnsNames ?? []).map((d) => `DNS:${d}`),
      ...(options.ipAddresses ?? []).map((ip) => `IP:${ip}`),
    ];
    const eku = { server: 'serverAuth', client: 'clientAuth', 'server+client': 'serverAuth,clientAuth' }[
      options.usage
    ];
    const ext = [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${eku}`,
      ...(sans.length > 0 ? [`subjectAltName=${sans.join(',')}`] : []),
    ].join('\n');
    await writeFile(join(this.dir, `${options.name}.ext`), `${ext}\n`);
    await openssl(
      [
        'x509',
        '-req',
        '-in',
        `${options.name}.csr`,
        '-CA',
        this.files.certPath,
        '-CAkey',
        this.files.keyPath,
        '-set_serial',
        `0x${randomBytes(16).toString('hex')}`,
        '-days',
        '2',
        '-sha256',
        '-extfile',
        `${options.name}.ext`,
        '-out',
        `${options.name}.crt`,
      ],
      this.dir,
      options.signal,
    );
    return readPair(this.dir, options.name);
  }
}
