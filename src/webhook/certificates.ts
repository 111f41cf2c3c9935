/**
 * X.509 for the webhook's self-managed CA and serving certificate. Node's crypto makes the keys
 * (RSA 2048, native and fast) and parses certificates; node-forge signs them, which Node cannot.
 */
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import forge from 'node-forge';

export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

/** Certificates start this far in the past, for clocks a little behind ours. */
const BACKDATE_MS = 5 * 60_000;

function newKey(): { forgeKey: forge.pki.rsa.PrivateKey; keyPem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  return { forgeKey: forge.pki.privateKeyFromPem(keyPem), keyPem };
}

function skeleton(
  key: forge.pki.rsa.PrivateKey,
  commonName: string,
  nowMs: number,
  validityMs: number,
): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  // A positive 127-bit serial: the top bit clear keeps the DER integer positive.
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f;
  cert.serialNumber = serial.toString('hex');
  cert.validity.notBefore = new Date(nowMs - BACKDATE_MS);
  cert.validity.notAfter = new Date(nowMs + validityMs);
  cert.setSubject([{ name: 'commonName', value: commonName }]);
  return cert;
}

/** A self-signed CA. */
export function issueCa(options: { commonName: string; nowMs: number; validityMs: number }): KeyPairPem {
  const { forgeKey, keyPem } = newKey();
  const cert = skeleton(forgeKey, options.commonName, options.nowMs, options.validityMs);
  cert.setIssuer(cert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forgeKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem };
}

/** A serving certificate for `dnsNames` and `ipAddresses`, signed by `ca`. */
export function issueServing(
  ca: KeyPairPem,
  options: { dnsNames: readonly string[]; ipAddresses: readonly string[]; nowMs: number; validityMs: number },
): KeyPairPem {
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem);
  const { forgeKey, keyPem } = newKey();
  const commonName = options.dnsNames[0] ?? options.ipAddresses[0] ?? 'tide-webhook';
  const cert = skeleton(forgeKey, commonName, options.nowMs, options.validityMs);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: [
        ...options.dnsNames.map((value) => ({ type: 2, value })),
        ...options.ipAddresses.map((ip) => ({ type: 7, ip })),
      ],
    },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem };
}

export interface CertificateFacts {
  notBeforeMs: number;
  notAfterMs: number;
  /** DNS names and IP addresses of the subjectAltName. */
  names: string[];
  fingerprint256: string;
}

/** What a PEM certificate says, or undefined when it is not one. */
export function certificateFacts(pem: string): CertificateFacts | undefined {
  try {
    const cert = new X509Certificate(pem);
    const names = (cert.subjectAltName ?? '')
      .split(', ')
      .filter((entry) => entry !== '')
      .map((entry) => entry.replace(/^(DNS|IP Address):/, ''));
    return {
      notBeforeMs: Date.parse(cert.validFrom),
      notAfterMs: Date.parse(cert.validTo),
      names,
      fingerprint256: cert.fingerprint256,
    };
  } catch {
    return undefined;
  }
}

/** Whether `leafPem` is signed by `caPem`. */
export function isSignedBy(leafPem: string, caPem: string): boolean {
  try {
    return new X509Certificate(leafPem).verify(new X509Certificate(caPem).publicKey);
  } catch {
    return false;
  }
}
