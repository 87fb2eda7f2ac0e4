/**
 * The `x509pop` attestor, agent side (SPIRE's agent plugin of that name): sends the
 * certificate chain (leaf first, then intermediates) and answers the server's challenge by
 * signing SHA-256(server nonce ‖ own nonce) with the leaf's private key. Wire format:
 * src/server/attestation/x509pop-wire.ts (SPIRE's JSON shapes).
 *
 * Errors: `ERR_AGENT_ATTESTATION_INVALID` (a challenge that is malformed or for another key
 * type), `ERR_X509POP_KEY_INVALID` (files that do not hold a matching key and certificate).
 */
import {
  constants,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  randomBytes,
  sign,
} from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { SpireEdgeError } from '../../common/errors.js';
import type { RandomSource } from '../../common/random.js';
import {
  decodeX509PopChallenge,
  encodeX509PopPayload,
  encodeX509PopResponse,
  X509POP_NONCE_LENGTH,
  x509PopSignedMessage,
} from '../../server/attestation/x509pop-wire.js';
import { parseCertificate, splitCertificates } from '../../spiffe/x509-cert.js';
import type { AgentNodeAttestor } from './node-attestor.js';

/** Options of {@link createX509PopAttestorClient}. */
export interface X509PopAttestorClientOptions {
  /** Leaf first, then intermediates (DER). */
  readonly certificates: readonly Uint8Array[];
  /** The leaf's private key (ECDSA or RSA). */
  readonly privateKey: KeyObject;
  /** Responder nonces; the system CSPRNG by default. */
  readonly random?: RandomSource;
}

function keyError(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_X509POP_KEY_INVALID',
    message,
    cause === undefined ? {} : { cause },
  );
}

const minimal = (b: Uint8Array): Uint8Array => {
  let i = 0;
  while (i < b.length && b[i] === 0) i++;
  return b.subarray(i);
};

/**
 * Creates the x509pop attestor from a key and its certificate chain.
 *
 * @throws SpireEdgeError `ERR_X509POP_KEY_INVALID` when the key does not match the leaf or
 *   is neither ECDSA nor RSA.
 */
export function createX509PopAttestorClient(
  options: X509PopAttestorClientOptions,
): AgentNodeAttestor {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('createX509PopAttestorClient options are required');
  }
  const { certificates, privateKey } = options;
  if (!Array.isArray(certificates) || certificates.length === 0) {
    throw new TypeError('certificates must hold at least the leaf certificate');
  }
  const kt = privateKey.asymmetricKeyType;
  const kind = kt === 'ec' ? 'ecdsa' : kt === 'rsa' ? 'rsa' : undefined;
  if (kind === undefined) throw keyError(`unsupported private key type ${kt ?? 'unknown'}`);
  let leafSpki: Uint8Array;
  try {
    leafSpki = parseCertificate(certificates[0]!).spkiDer;
  } catch (err) {
    throw keyError(`leaf certificate cannot be parsed: ${(err as Error).message}`, err);
  }
  const keySpki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  if (Buffer.compare(Buffer.from(leafSpki), keySpki) !== 0) {
    throw keyError('private key does not match the leaf certificate');
  }
  const payload = encodeX509PopPayload(certificates);
  const nonceOf = (): Uint8Array =>
    options.random?.bytes(X509POP_NONCE_LENGTH) ??
    new Uint8Array(randomBytes(X509POP_NONCE_LENGTH));

  return {
    type: 'x509pop',
    payload: async () => payload,
    async respond(challengeBytes) {
      let challenge: ReturnType<typeof decodeX509PopChallenge>;
      try {
        challenge = decodeX509PopChallenge(challengeBytes);
      } catch (err) {
        throw new SpireEdgeError(
          'ERR_AGENT_ATTESTATION_INVALID',
          `unable to unmarshal challenge: ${(err as Error).message}`,
          { cause: err },
        );
      }
      if (challenge.kind !== kind) {
        throw new SpireEdgeError(
          'ERR_AGENT_ATTESTATION_INVALID',
          `expecting ${kind === 'rsa' ? 'RSA' : 'ECDSA'} challenge`,
        );
      }
      const nonce = nonceOf();
      const message = x509PopSignedMessage(challenge.nonce, nonce);
      if (kind === 'rsa') {
        const signature = sign('sha256', message, {
          key: privateKey,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: constants.RSA_PSS_SALTLEN_MAX_SIGN,
        });
        return encodeX509PopResponse({ kind: 'rsa', nonce, signature: new Uint8Array(signature) });
      }
      const sig = new Uint8Array(
        sign('sha256', message, { key: privateKey, dsaEncoding: 'ieee-p1363' }),
      );
      const half = sig.length / 2;
      return encodeX509PopResponse({
        kind: 'ecdsa',
        nonce,
        r: minimal(sig.subarray(0, half)),
        s: minimal(sig.subarray(half)),
      });
    },
  };
}

/** SPIRE's agent plugin_data for x509pop (file mode). */
export interface X509PopAttestorFiles {
  /** `private_key_path`: PEM (PKCS#8, SEC 1 or PKCS#1). */
  readonly privateKeyPath: string;
  /** `certificate_path`: PEM, the leaf first (further certificates are sent too). */
  readonly certificatePath: string;
  /** `intermediates_path`: PEM intermediates appended to the chain. */
  readonly intermediatesPath?: string;
}

/**
 * Loads the key and certificates from files and creates the attestor.
 *
 * @throws SpireEdgeError `ERR_X509POP_KEY_INVALID` for unreadable or mismatched files.
 */
export async function loadX509PopAttestorClient(
  files: X509PopAttestorFiles,
  random?: RandomSource,
): Promise<AgentNodeAttestor> {
  const read = async (path: string, what: string): Promise<string> => {
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      throw keyError(`unable to read ${what} ${path}: ${(err as Error).message}`, err);
    }
  };
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(await read(files.privateKeyPath, 'private key'));
  } catch (err) {
    if (err instanceof SpireEdgeError) throw err;
    throw keyError(`unable to load private key: ${(err as Error).message}`, err);
  }
  const certs: Uint8Array[] = [];
  try {
    certs.push(...splitCertificates(await read(files.certificatePath, 'certificate')));
    if (files.intermediatesPath !== undefined && files.intermediatesPath.trim() !== '') {
      certs.push(...splitCertificates(await read(files.intermediatesPath, 'intermediates')));
    }
  } catch (err) {
    if (err instanceof SpireEdgeError && err.code === 'ERR_X509POP_KEY_INVALID') throw err;
    throw keyError(`unable to load certificates: ${(err as Error).message}`, err);
  }
  return createX509PopAttestorClient({
    certificates: certs,
    privateKey,
    ...(random === undefined ? {} : { random }),
  });
}
