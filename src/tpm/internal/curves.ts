/** The ECC curves this code can use, with their TPM, X.509, JWK and node:crypto names. */
import { TPM_ECC } from '../constants.js';

/** One supported curve. */
export interface TpmCurve {
  readonly curveId: number;
  /** The namedCurve OID (RFC 5480 §2.1.1.1). */
  readonly oid: string;
  readonly jwk: 'P-256' | 'P-384' | 'P-521';
  /** The node:crypto ECDH curve name. */
  readonly node: 'prime256v1' | 'secp384r1' | 'secp521r1';
  /** Field element (coordinate) size in bytes. */
  readonly size: number;
  /** The group order. */
  readonly n: bigint;
}

const CURVES: readonly TpmCurve[] = [
  {
    curveId: TPM_ECC.NIST_P256,
    oid: '1.2.840.10045.3.1.7',
    jwk: 'P-256',
    node: 'prime256v1',
    size: 32,
    n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  },
  {
    curveId: TPM_ECC.NIST_P384,
    oid: '1.3.132.0.34',
    jwk: 'P-384',
    node: 'secp384r1',
    size: 48,
    n: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
  },
  {
    curveId: TPM_ECC.NIST_P521,
    oid: '1.3.132.0.35',
    jwk: 'P-521',
    node: 'secp521r1',
    size: 66,
    n: 0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n,
  },
];

/** The curve with TPM_ECC_CURVE `curveId`, or undefined when unsupported. */
export function curveById(curveId: number): TpmCurve | undefined {
  return CURVES.find((c) => c.curveId === curveId);
}

/** The curve with JWK name `crv`, or undefined. */
export function curveByJwk(crv: string | undefined): TpmCurve | undefined {
  return CURVES.find((c) => c.jwk === crv);
}
