/**
 * verifyX509Svid against the SPIFFE X509-SVID standard (§4, §5): one test per rule, each
 * with certificates crafted by an independent encoder (@peculiar/x509) that break exactly
 * that rule, asserting the error code and the rule named in the message.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { parseTrustDomain } from '../../../src/spiffe/id.js';
import { X509Bundle } from '../../../src/spiffe/x509-bundle.js';
import { mintX509CaCertificate, X509SvidMinter } from '../../../src/spiffe/x509-mint.js';
import {
  MAX_X509_CHAIN_LENGTH,
  MAX_X509_PATH_LENGTH,
  verifyX509Svid,
} from '../../../src/spiffe/x509-verify.js';
import {
  type CraftOptions,
  caExtensions,
  craft,
  generateKey,
  HOUR,
  KU,
  leafExtensions,
  makePki,
  memorySigner,
  NOW,
  type PxKey,
  px,
  pxKey,
  pxRsaKey,
  type SigAlg,
  thrown,
  uriSan,
} from './x509-support.js';

const ROOT = 'CN=root,O=SPIFFE,C=US';
const INTER = 'CN=intermediate,O=SPIFFE,C=US';
const LEAF = 'O=SPIRE,C=US';

let rootKey: PxKey;
let interKey: PxKey;
let leafKey: PxKey;
let rootDer: Uint8Array;
let interDer: Uint8Array;
let bundle: X509Bundle;

function leafOpts(over: Partial<CraftOptions> = {}): CraftOptions {
  return {
    subject: LEAF,
    issuer: INTER,
    publicKey: leafKey.keys.publicKey,
    signingKey: interKey.keys.privateKey,
    extensions: leafExtensions(),
    ...over,
  };
}

async function interWith(over: Partial<CraftOptions> = {}): Promise<Uint8Array> {
  return craft({
    subject: INTER,
    issuer: ROOT,
    publicKey: interKey.keys.publicKey,
    signingKey: rootKey.keys.privateKey,
    extensions: await caExtensions(interKey.keys.publicKey, { uri: 'spiffe://example.org' }),
    ...over,
  });
}

/** Expects `verifyX509Svid` to fail with `ERR_SVID_VERIFICATION_FAILED` naming `rule`. */
function expectRule(chain: Uint8Array[], rule: string, b = bundle, now = NOW): void {
  const err = thrown(() => verifyX509Svid(chain, b, { now }));
  expect(err.code).toBe('ERR_SVID_VERIFICATION_FAILED');
  expect(err.message).toContain(rule);
}

beforeAll(async () => {
  rootKey = await pxKey('P-384');
  interKey = await pxKey();
  leafKey = await pxKey();
  rootDer = await craft({
    subject: ROOT,
    issuer: ROOT,
    publicKey: rootKey.keys.publicKey,
    signingKey: rootKey.keys.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' } as SigAlg,
    notBefore: new Date(NOW.getTime() - 100 * HOUR),
    notAfter: new Date(NOW.getTime() + 100 * HOUR),
    extensions: await caExtensions(rootKey.keys.publicKey, { uri: 'spiffe://example.org' }),
  });
  interDer = await interWith();
  bundle = new X509Bundle('example.org', [rootDer]);
});

describe('verifyX509Svid: valid chains', () => {
  it('verifies leaf → intermediate → root and returns the ID and the chain', async () => {
    const leaf = await craft(leafOpts());
    const r = verifyX509Svid([leaf, interDer], bundle, { now: NOW });
    expect(r.id.toString()).toBe('spiffe://example.org/workload');
    expect(r.verifiedChains).toHaveLength(1);
    expect(r.verifiedChains[0]!.map((c) => Buffer.from(c))).toEqual(
      [leaf, interDer, rootDer].map((c) => Buffer.from(c)),
    );
  });

  it('verifies a leaf signed directly by a bundle authority', async () => {
    const leaf = await craft(leafOpts({ issuer: ROOT, signingKey: rootKey.keys.privateKey }));
    const r = verifyX509Svid([leaf], bundle, { now: NOW });
    expect(r.verifiedChains[0]).toHaveLength(2);
  });

  it('accepts extra unused intermediates, any order, and the root repeated in the chain', async () => {
    const leaf = await craft(leafOpts());
    const stray = await craft({
      ...leafOpts(),
      subject: 'CN=stray',
      extensions: await caExtensions(leafKey.keys.publicKey),
    });
    const r = verifyX509Svid([leaf, stray, rootDer, interDer], bundle, { now: NOW });
    expect(r.verifiedChains).toHaveLength(1);
    expect(r.verifiedChains[0]).toHaveLength(3);
  });

  it('returns every chain when two authorities certify the intermediate', async () => {
    // A second root with the same name and key as the first (a re-issued root).
    const root2 = await craft({
      subject: ROOT,
      issuer: ROOT,
      publicKey: rootKey.keys.publicKey,
      signingKey: rootKey.keys.privateKey,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' } as SigAlg,
      serialNumber: '77',
      extensions: await caExtensions(rootKey.keys.publicKey),
    });
    const leaf = await craft(leafOpts());
    const r = verifyX509Svid([leaf, interDer], new X509Bundle('example.org', [rootDer, root2]), {
      now: NOW,
    });
    expect(r.verifiedChains).toHaveLength(2);
  });

  it('verifies RSA PKCS#1 v1.5 and RSASSA-PSS signatures along the path', async () => {
    const rsa = await pxRsaKey('RSASSA-PKCS1-v1_5');
    const pss = await pxRsaKey('RSA-PSS');
    const inter1 = await interWith({
      subject: 'CN=rsa',
      publicKey: rsa.keys.publicKey,
      extensions: await caExtensions(rsa.keys.publicKey),
    });
    const inter2 = await craft({
      subject: 'CN=pss',
      issuer: 'CN=rsa',
      publicKey: pss.keys.publicKey,
      signingKey: rsa.keys.privateKey,
      signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-384' } as SigAlg,
      extensions: await caExtensions(pss.keys.publicKey),
    });
    const leaf = await craft(
      leafOpts({
        issuer: 'CN=pss',
        signingKey: pss.keys.privateKey,
        signingAlgorithm: { name: 'RSA-PSS', saltLength: 32 } as SigAlg,
      }),
    );
    const r = verifyX509Svid([leaf, inter2, inter1], bundle, { now: NOW });
    expect(r.verifiedChains[0]).toHaveLength(4);
  });

  it('verifies chains minted by the library (P-256, P-384 and RSA CAs)', async () => {
    for (const [rootType, interType] of [
      ['ec-p256', 'ec-p384'],
      ['rsa-2048', 'ec-p256'],
      ['ec-p384', 'rsa-2048'],
    ] as const) {
      const pki = await makePki('example.org', rootType, interType);
      const leaf = await pki.minter.mint({
        spiffeId: 'spiffe://example.org/ns/web',
        publicKey: generateKey('ec-p256').publicKey,
        notBefore: NOW,
        notAfter: new Date(NOW.getTime() + HOUR),
      });
      const r = verifyX509Svid(
        [leaf, pki.intermediateDer],
        new X509Bundle('example.org', [pki.rootDer]),
        { now: new Date(NOW.getTime() + 1000) },
      );
      expect(r.id.toString()).toBe('spiffe://example.org/ns/web');
    }
  });

  it('uses key identifiers to order the search, not to decide it', async () => {
    const ext = [...leafExtensions(), new px.AuthorityKeyIdentifierExtension('0102030405')];
    const leaf = await craft(leafOpts({ extensions: ext }));
    expect(verifyX509Svid([leaf, interDer], bundle, { now: NOW }).verifiedChains).toHaveLength(1);
  });

  it('checks validity at the boundaries inclusively', async () => {
    const notBefore = new Date(NOW.getTime() - HOUR);
    const notAfter = new Date(NOW.getTime() + HOUR);
    const leaf = await craft(leafOpts({ notBefore, notAfter }));
    expect(verifyX509Svid([leaf, interDer], bundle, { now: notBefore }).id.path).toBe('/workload');
    expect(verifyX509Svid([leaf, interDer], bundle, { now: notAfter }).id.path).toBe('/workload');
  });
});

describe('verifyX509Svid: leaf rules (X509-SVID §2, §3.1, §4.1, §4.3, §5.2)', () => {
  const rule = 'leaf certificate must have exactly one URI SAN';

  it('rejects a leaf without a URI SAN', async () => {
    const ext = leafExtensions().filter((e) => !(e instanceof px.SubjectAlternativeNameExtension));
    ext.push(new px.SubjectAlternativeNameExtension([{ type: 'dns', value: 'a.example' }]));
    expectRule([await craft(leafOpts({ extensions: ext })), interDer], `${rule} (found 0)`);
  });

  it('rejects a leaf without a SAN extension at all', async () => {
    const ext = leafExtensions().filter((e) => !(e instanceof px.SubjectAlternativeNameExtension));
    expectRule([await craft(leafOpts({ extensions: ext })), interDer], `${rule} (found 0)`);
  });

  it('rejects a leaf with two URI SANs', async () => {
    const ext = leafExtensions(['spiffe://example.org/a', 'spiffe://example.org/b']);
    expectRule([await craft(leafOpts({ extensions: ext })), interDer], `${rule} (found 2)`);
  });

  it('rejects a leaf whose URI SAN is not a SPIFFE ID', async () => {
    const ext = leafExtensions('https://example.org/workload');
    expectRule(
      [await craft(leafOpts({ extensions: ext })), interDer],
      'leaf certificate URI SAN is not a valid SPIFFE ID: scheme is missing or invalid',
    );
  });

  it('rejects a leaf whose SPIFFE ID has no path', async () => {
    const ext = leafExtensions('spiffe://example.org');
    expectRule(
      [await craft(leafOpts({ extensions: ext })), interDer],
      'leaf certificate SPIFFE ID must have a non-root path',
    );
  });

  it('rejects a leaf that is a CA', async () => {
    const ext = leafExtensions();
    ext[0] = new px.BasicConstraintsExtension(true, undefined, true);
    expectRule(
      [await craft(leafOpts({ extensions: ext })), interDer],
      'leaf certificate cannot be a CA',
    );
  });

  it('rejects a leaf without keyUsage', async () => {
    const ext = leafExtensions().filter((e) => !(e instanceof px.KeyUsagesExtension));
    expectRule(
      [await craft(leafOpts({ extensions: ext })), interDer],
      'leaf certificate must have the keyUsage extension',
    );
  });

  it('rejects a leaf without digitalSignature', async () => {
    const ext = leafExtensions();
    ext[1] = new px.KeyUsagesExtension(KU.keyEncipherment | KU.keyAgreement, true);
    expectRule(
      [await craft(leafOpts({ extensions: ext })), interDer],
      'leaf certificate must have the digitalSignature key usage',
    );
  });

  it('rejects a leaf with keyCertSign', async () => {
    const ext = leafExtensions();
    ext[1] = new px.KeyUsagesExtension(KU.digitalSignature | KU.keyCertSign, true);
    expectRule(
      [await craft(leafOpts({ extensions: ext })), interDer],
      'leaf certificate cannot have the keyCertSign key usage',
    );
  });

  it('rejects a leaf with cRLSign', async () => {
    const ext = leafExtensions();
    ext[1] = new px.KeyUsagesExtension(KU.digitalSignature | KU.cRLSign, true);
    expectRule(
      [await craft(leafOpts({ extensions: ext })), interDer],
      'leaf certificate cannot have the cRLSign key usage',
    );
  });

  it('rejects a leaf with an unknown critical extension', async () => {
    const ext = [
      ...leafExtensions(),
      new px.Extension('1.3.6.1.4.1.99999.1', true, Uint8Array.of(5, 0)),
    ];
    expectRule(
      [await craft(leafOpts({ extensions: ext })), interDer],
      'leaf certificate has an unsupported critical extension 1.3.6.1.4.1.99999.1',
    );
  });

  it('accepts an unknown non-critical extension', async () => {
    const ext = [
      ...leafExtensions(),
      new px.Extension('1.3.6.1.4.1.99999.1', false, Uint8Array.of(5, 0)),
    ];
    expect(
      verifyX509Svid([await craft(leafOpts({ extensions: ext })), interDer], bundle, { now: NOW })
        .id.path,
    ).toBe('/workload');
  });

  it('rejects an expired leaf and a leaf not yet valid', async () => {
    const leaf = await craft(leafOpts());
    const rule2 = 'leaf certificate has expired or is not yet valid';
    expectRule([leaf, interDer], rule2, bundle, new Date(NOW.getTime() + HOUR + 1000));
    expectRule([leaf, interDer], rule2, bundle, new Date(NOW.getTime() - HOUR - 1000));
  });
});

describe('verifyX509Svid: trust (X509-SVID §5.1, RFC 5280 §6)', () => {
  it('rejects an ID whose trust domain has no bundle', async () => {
    const leaf = await craft(
      leafOpts({ extensions: leafExtensions('spiffe://other.org/workload') }),
    );
    expectRule([leaf, interDer], 'no X.509 bundle for trust domain other.org');
  });

  it('selects the bundle by the leaf ID trust domain, not by the chain', async () => {
    // The authorities of example.org are registered for other.org only.
    const source = {
      getX509Authorities: (td: { name: string }) =>
        td.name === 'other.org' ? [rootDer] : undefined,
    };
    expectRule(
      [await craft(leafOpts()), interDer],
      'no X.509 bundle for trust domain example.org',
      source as never,
    );
  });

  it('rejects a chain that leads to an authority outside the bundle', async () => {
    const otherRoot = await pxKey();
    const otherRootDer = await craft({
      subject: 'CN=other',
      issuer: 'CN=other',
      publicKey: otherRoot.keys.publicKey,
      signingKey: otherRoot.keys.privateKey,
      extensions: await caExtensions(otherRoot.keys.publicKey),
    });
    const leaf = await craft(leafOpts());
    expectRule(
      [leaf, interDer],
      'certificate signed by unknown authority',
      new X509Bundle('example.org', [otherRootDer]),
    );
    expectRule(
      [leaf, interDer],
      'certificate signed by unknown authority',
      new X509Bundle('example.org', []),
    );
  });

  it('rejects a leaf without the intermediate that signed it', async () => {
    expectRule([await craft(leafOpts())], 'certificate signed by unknown authority');
  });

  it('rejects a signature made by another key under the same issuer name', async () => {
    const impostor = await pxKey();
    const leaf = await craft(leafOpts({ signingKey: impostor.keys.privateKey }));
    expectRule(
      [leaf, interDer],
      'certificate signed by unknown authority (signature does not verify',
    );
  });

  it('rejects a tampered leaf', async () => {
    const leaf = await craft(leafOpts());
    // Flip one bit of the subject key inside the signed part.
    const i = Buffer.from(leaf).indexOf(Buffer.from('SPIRE'));
    const bad = Uint8Array.from(leaf);
    bad[i] = 'X'.charCodeAt(0);
    expectRule([bad, interDer], 'certificate signed by unknown authority');
  });

  it('rejects SHA-1 signatures', async () => {
    const leaf = await craft(
      leafOpts({ signingAlgorithm: { name: 'ECDSA', hash: 'SHA-1' } as SigAlg }),
    );
    expectRule([leaf, interDer], 'certificate signed with an unsupported algorithm');
  });

  it('rejects an intermediate that is not a CA', async () => {
    const inter = await interWith({
      extensions: [
        new px.BasicConstraintsExtension(false, undefined, true),
        new px.KeyUsagesExtension(KU.keyCertSign, true),
      ],
    });
    expectRule([await craft(leafOpts()), inter], 'intermediate certificate must be a CA');
  });

  it('rejects an intermediate without basicConstraints', async () => {
    const inter = await interWith({
      extensions: [new px.KeyUsagesExtension(KU.keyCertSign, true)],
    });
    expectRule([await craft(leafOpts()), inter], 'intermediate certificate must be a CA');
  });

  it('rejects an intermediate without keyCertSign', async () => {
    const inter = await interWith({
      extensions: [
        new px.BasicConstraintsExtension(true, undefined, true),
        new px.KeyUsagesExtension(KU.cRLSign | KU.digitalSignature, true),
      ],
    });
    expectRule(
      [await craft(leafOpts()), inter],
      'intermediate certificate must have the keyCertSign key usage',
    );
  });

  it('rejects an intermediate whose SPIFFE ID has a path', async () => {
    const inter = await interWith({
      extensions: [
        ...(await caExtensions(interKey.keys.publicKey)),
        uriSan('spiffe://example.org/ca'),
      ],
    });
    expectRule(
      [await craft(leafOpts()), inter],
      'intermediate certificate SPIFFE ID cannot have a path',
    );
  });

  it('accepts a signing certificate with a non-SPIFFE URI SAN', async () => {
    const inter = await interWith({
      extensions: [
        ...(await caExtensions(interKey.keys.publicKey)),
        uriSan('https://ca.example.org'),
      ],
    });
    expect(
      verifyX509Svid([await craft(leafOpts()), inter], bundle, { now: NOW }).verifiedChains,
    ).toHaveLength(1);
  });

  it('rejects an intermediate with an unknown critical extension', async () => {
    const inter = await interWith({
      extensions: [
        ...(await caExtensions(interKey.keys.publicKey)),
        new px.Extension('2.5.29.30', true, Uint8Array.of(0x30, 0x00)),
      ],
    });
    expectRule(
      [await craft(leafOpts()), inter],
      'intermediate certificate has an unsupported critical extension 2.5.29.30',
    );
  });

  it('rejects an expired intermediate and one not yet valid', async () => {
    const expired = await interWith({
      notBefore: new Date(NOW.getTime() - 10 * HOUR),
      notAfter: new Date(NOW.getTime() - HOUR),
    });
    expectRule(
      [await craft(leafOpts()), expired],
      'intermediate certificate has expired or is not yet valid',
    );
    const future = await interWith({
      notBefore: new Date(NOW.getTime() + HOUR),
      notAfter: new Date(NOW.getTime() + 10 * HOUR),
    });
    expectRule(
      [await craft(leafOpts()), future],
      'intermediate certificate has expired or is not yet valid',
    );
  });

  async function rootWith(over: Partial<CraftOptions>): Promise<X509Bundle> {
    const der = await craft({
      subject: ROOT,
      issuer: ROOT,
      publicKey: rootKey.keys.publicKey,
      signingKey: rootKey.keys.privateKey,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' } as SigAlg,
      extensions: await caExtensions(rootKey.keys.publicKey),
      ...over,
    });
    return new X509Bundle('example.org', [der]);
  }

  it('rejects a root that is not a CA or lacks keyCertSign', async () => {
    const leaf = await craft(leafOpts());
    expectRule(
      [leaf, interDer],
      'root certificate must be a CA',
      await rootWith({ extensions: [new px.KeyUsagesExtension(KU.keyCertSign, true)] }),
    );
    expectRule(
      [leaf, interDer],
      'root certificate must have the keyCertSign key usage',
      await rootWith({
        extensions: [
          new px.BasicConstraintsExtension(true, undefined, true),
          new px.KeyUsagesExtension(KU.cRLSign, true),
        ],
      }),
    );
  });

  it('rejects a root whose SPIFFE ID has a path', async () => {
    expectRule(
      [await craft(leafOpts()), interDer],
      'root certificate SPIFFE ID cannot have a path',
      await rootWith({
        extensions: [
          ...(await caExtensions(rootKey.keys.publicKey)),
          uriSan('spiffe://example.org/root'),
        ],
      }),
    );
  });

  it('rejects an expired root', async () => {
    expectRule(
      [await craft(leafOpts()), interDer],
      'root certificate has expired or is not yet valid',
      await rootWith({
        notBefore: new Date(NOW.getTime() - 10 * HOUR),
        notAfter: new Date(NOW.getTime() - HOUR),
      }),
    );
  });

  it('enforces pathLenConstraint on the root', async () => {
    const leaf = await craft(leafOpts());
    const b0 = await rootWith({
      extensions: await caExtensions(rootKey.keys.publicKey, { pathLen: 0 }),
    });
    expectRule([leaf, interDer], 'root certificate path length constraint (0) exceeded', b0);
    // pathLen 0 still allows leaves signed directly by the root.
    const direct = await craft(leafOpts({ issuer: ROOT, signingKey: rootKey.keys.privateKey }));
    expect(verifyX509Svid([direct], b0, { now: NOW }).verifiedChains).toHaveLength(1);
    const b1 = await rootWith({
      extensions: await caExtensions(rootKey.keys.publicKey, { pathLen: 1 }),
    });
    expect(verifyX509Svid([leaf, interDer], b1, { now: NOW }).verifiedChains).toHaveLength(1);
  });

  it('enforces pathLenConstraint on an intermediate', async () => {
    const lowKey = await pxKey();
    const inter0 = await interWith({
      extensions: await caExtensions(interKey.keys.publicKey, { pathLen: 0 }),
    });
    const low = await craft({
      subject: 'CN=low',
      issuer: INTER,
      publicKey: lowKey.keys.publicKey,
      signingKey: interKey.keys.privateKey,
      extensions: await caExtensions(lowKey.keys.publicKey),
    });
    const leaf = await craft(leafOpts({ issuer: 'CN=low', signingKey: lowKey.keys.privateKey }));
    expectRule([leaf, low, inter0], 'intermediate certificate path length constraint (0) exceeded');
    expect(
      verifyX509Svid([leaf, low, interDer], bundle, { now: NOW }).verifiedChains[0],
    ).toHaveLength(4);
  });

  it('rejects an empty chain and a chain above the length limit', async () => {
    expectRule([], 'empty certificate chain');
    const leaf = await craft(leafOpts());
    const long = [leaf, ...Array.from({ length: MAX_X509_CHAIN_LENGTH }, () => interDer)];
    expectRule(long, `certificate chain is longer than ${MAX_X509_CHAIN_LENGTH} certificates`);
  });

  it('rejects a certification path above the depth limit', async () => {
    const pki = await makePki();
    // levels[i] is a CA at depth i below the root; a leaf under levels[n-1] has a path of
    // n + 2 certificates.
    const levels: Array<{ der: Uint8Array; signer: ReturnType<typeof memorySigner> }> = [];
    let issuer = { der: pki.rootDer, signer: pki.rootSigner };
    for (let i = 0; i < MAX_X509_PATH_LENGTH - 1; i++) {
      const key = generateKey('ec-p256');
      const der = await mintX509CaCertificate({
        trustDomain: 'example.org',
        subject: { commonName: `level ${i}` },
        publicKey: key.publicKey,
        notBefore: new Date(NOW.getTime() - HOUR),
        notAfter: new Date(NOW.getTime() + HOUR),
        signer: issuer.signer,
        issuerCertDer: issuer.der,
      });
      issuer = { der, signer: memorySigner('ec-p256', key) };
      levels.push(issuer);
    }
    const leafUnder = (n: number): Promise<Uint8Array> =>
      new X509SvidMinter({ issuerCertDer: levels[n - 1]!.der, signer: levels[n - 1]!.signer }).mint(
        {
          spiffeId: 'spiffe://example.org/deep',
          publicKey: generateKey('ec-p256').publicKey,
          notBefore: NOW,
          notAfter: new Date(NOW.getTime() + HOUR),
        },
      );
    const b = new X509Bundle('example.org', [pki.rootDer]);
    const at = new Date(NOW.getTime() + 1000);
    const all = levels.map((l) => l.der).reverse();
    const tooDeep = await leafUnder(MAX_X509_PATH_LENGTH - 1);
    expectRule(
      [tooDeep, ...all],
      `certification path is longer than ${MAX_X509_PATH_LENGTH} certificates`,
      b,
      at,
    );
    const deepest = await leafUnder(MAX_X509_PATH_LENGTH - 2);
    const r = verifyX509Svid([deepest, ...all], b, { now: at });
    expect(r.verifiedChains[0]).toHaveLength(MAX_X509_PATH_LENGTH);
  });

  it('reports ERR_X509_INVALID for chain elements that are not certificates', async () => {
    const leaf = await craft(leafOpts());
    for (const chain of [[Uint8Array.of(1, 2, 3)], [leaf, Uint8Array.of(0x30, 0x03, 1, 2, 3)]]) {
      const err = thrown(() => verifyX509Svid(chain, bundle, { now: NOW }));
      expect(err.code).toBe('ERR_X509_INVALID');
    }
  });

  it('throws TypeError for bad arguments', () => {
    expect(() => verifyX509Svid('x' as never, bundle)).toThrow(TypeError);
    expect(() => verifyX509Svid([], {} as never)).toThrow(TypeError);
    expect(() => verifyX509Svid([], bundle, { now: new Date(Number.NaN) })).toThrow(TypeError);
  });

  it('takes the current time by default', async () => {
    const now = new Date();
    const key = generateKey('ec-p256');
    const root = await mintX509CaCertificate({
      trustDomain: parseTrustDomain('example.org'),
      subject: {},
      publicKey: key.publicKey,
      notBefore: new Date(now.getTime() - HOUR),
      notAfter: new Date(now.getTime() + HOUR),
      signer: memorySigner('ec-p256', key),
    });
    const leaf = await new X509SvidMinter({
      issuerCertDer: root,
      signer: memorySigner('ec-p256', key),
    }).mint({
      spiffeId: 'spiffe://example.org/now',
      publicKey: generateKey('ec-p256').spki,
      notBefore: new Date(now.getTime() - 1000),
      notAfter: new Date(now.getTime() + HOUR),
    });
    expect(verifyX509Svid([leaf], new X509Bundle('example.org', [root])).id.path).toBe('/now');
  });
});
