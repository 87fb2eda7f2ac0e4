// Key templates. The EK templates are the TCG EK Credential Profile (2.x, Annex B) defaults:
// a TPM derives the same EK from the same template every time, so these must match the
// manufacturer's template bit for bit or the EK certificate describes a different key.
#include <cstring>

#include "tpm-internal.h"

namespace spire_edge {
namespace tpm {
namespace {

// PolicyA_SHA256 = TPM2_PolicySecret(TPM_RH_ENDORSEMENT) with SHA-256 (templates L-1, L-2).
const uint8_t kPolicyASha256[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xB3, 0xF8, 0x1A, 0x90, 0xCC, 0x8D, 0x46, 0xA5, 0xD7, 0x24,
    0xFD, 0x52, 0xD7, 0x6E, 0x06, 0x52, 0x0B, 0x64, 0xF2, 0xA1, 0xDA, 0x1B, 0x33, 0x14, 0x69, 0xAA};

// PolicyB_SHA384 = TPM2_PolicyOR(PolicyA_SHA384, PolicyC_SHA384) (template H-3).
const uint8_t kPolicyBSha384[48] = {
    0xB2, 0x6E, 0x7D, 0x28, 0xD1, 0x1A, 0x50, 0xBC, 0x53, 0xD8, 0x82, 0xBC, 0xF5, 0xFD, 0x3A, 0x1A,
    0x07, 0x41, 0x48, 0xBB, 0x35, 0xD3, 0xB4, 0xE4, 0xCB, 0x1C, 0x0A, 0xD9, 0xBD, 0xE4, 0x19, 0xCA,
    0xCB, 0x47, 0xBA, 0x09, 0x69, 0x96, 0x46, 0x15, 0x0F, 0x9F, 0xC0, 0x00, 0xF3, 0xF8, 0x0E, 0x12};

constexpr TPMA_OBJECT kEkLowAttrs = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                    TPMA_OBJECT_SENSITIVEDATAORIGIN |
                                    TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED |
                                    TPMA_OBJECT_DECRYPT;  // 0x000300B2
// The high-range templates also set userWithAuth (0x000300F2).
constexpr TPMA_OBJECT kEkHighAttrs = kEkLowAttrs | TPMA_OBJECT_USERWITHAUTH;

constexpr TPMA_OBJECT kAkAttrs = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                 TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                 TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;  // 0x00050072

constexpr TPMA_OBJECT kSrkAttrs = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                  TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                  TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED |
                                  TPMA_OBJECT_DECRYPT;  // 0x00030472

void SetPolicy(TPMT_PUBLIC& p, const uint8_t* digest, size_t len) {
  p.authPolicy.size = static_cast<UINT16>(len);
  std::memcpy(p.authPolicy.buffer, digest, len);
}

void SetAes(TPMT_SYM_DEF_OBJECT& sym, UINT16 bits) {
  sym.algorithm = TPM2_ALG_AES;
  sym.keyBits.aes = bits;
  sym.mode.aes = TPM2_ALG_CFB;
}

}  // namespace

TPM2B_PUBLIC EkTemplate(EkAlg alg) {
  TPM2B_PUBLIC t;
  std::memset(&t, 0, sizeof(t));
  TPMT_PUBLIC& p = t.publicArea;
  switch (alg) {
    case EkAlg::Rsa2048:  // L-1
      p.type = TPM2_ALG_RSA;
      p.nameAlg = TPM2_ALG_SHA256;
      p.objectAttributes = kEkLowAttrs;
      SetPolicy(p, kPolicyASha256, sizeof(kPolicyASha256));
      SetAes(p.parameters.rsaDetail.symmetric, 128);
      p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
      p.parameters.rsaDetail.keyBits = 2048;
      p.parameters.rsaDetail.exponent = 0;
      p.unique.rsa.size = 256;  // zero-filled
      break;
    case EkAlg::EccP256:  // L-2
      p.type = TPM2_ALG_ECC;
      p.nameAlg = TPM2_ALG_SHA256;
      p.objectAttributes = kEkLowAttrs;
      SetPolicy(p, kPolicyASha256, sizeof(kPolicyASha256));
      SetAes(p.parameters.eccDetail.symmetric, 128);
      p.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
      p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
      p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
      p.unique.ecc.x.size = 32;  // zero-filled
      p.unique.ecc.y.size = 32;
      break;
    case EkAlg::EccP384:  // H-3: unique is empty in the high-range templates
      p.type = TPM2_ALG_ECC;
      p.nameAlg = TPM2_ALG_SHA384;
      p.objectAttributes = kEkHighAttrs;
      SetPolicy(p, kPolicyBSha384, sizeof(kPolicyBSha384));
      SetAes(p.parameters.eccDetail.symmetric, 256);
      p.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
      p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P384;
      p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
      p.unique.ecc.x.size = 0;
      p.unique.ecc.y.size = 0;
      break;
  }
  return t;
}

TPM2B_PUBLIC AkTemplate(AkAlg alg) {
  TPM2B_PUBLIC t;
  std::memset(&t, 0, sizeof(t));
  TPMT_PUBLIC& p = t.publicArea;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = kAkAttrs;
  switch (alg) {
    case AkAlg::EccP256:
      p.type = TPM2_ALG_ECC;
      p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
      p.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
      p.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
      p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
      p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
      break;
    case AkAlg::Rsa2048:
      p.type = TPM2_ALG_RSA;
      p.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
      p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_RSASSA;
      p.parameters.rsaDetail.scheme.details.rsassa.hashAlg = TPM2_ALG_SHA256;
      p.parameters.rsaDetail.keyBits = 2048;
      p.parameters.rsaDetail.exponent = 0;
      break;
  }
  return t;
}

TPM2B_PUBLIC SrkTemplate() {
  TPM2B_PUBLIC t;
  std::memset(&t, 0, sizeof(t));
  TPMT_PUBLIC& p = t.publicArea;
  p.type = TPM2_ALG_ECC;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = kSrkAttrs;
  SetAes(p.parameters.eccDetail.symmetric, 128);
  p.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
  p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
  p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  p.unique.ecc.x.size = 32;
  p.unique.ecc.y.size = 32;
  return t;
}

TPM2B_PUBLIC SealTemplate(const TPM2B_DIGEST* policy) {
  TPM2B_PUBLIC t;
  std::memset(&t, 0, sizeof(t));
  TPMT_PUBLIC& p = t.publicArea;
  p.type = TPM2_ALG_KEYEDHASH;
  p.nameAlg = TPM2_ALG_SHA256;
  // sensitiveDataOrigin must be CLEAR: the caller supplies the data. Without a policy the
  // object is usable with its (empty) authValue; with one, only through the policy.
  p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_NODA;
  if (policy == nullptr) {
    p.objectAttributes |= TPMA_OBJECT_USERWITHAUTH;
  } else {
    p.authPolicy = *policy;
  }
  p.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
  return t;
}

bool SameTemplate(const TPMT_PUBLIC& a, const TPMT_PUBLIC& b) {
  TPMT_PUBLIC x = a;
  TPMT_PUBLIC y = b;
  std::memset(&x.unique, 0, sizeof(x.unique));
  std::memset(&y.unique, 0, sizeof(y.unique));
  uint8_t bx[sizeof(TPMT_PUBLIC)];
  uint8_t by[sizeof(TPMT_PUBLIC)];
  size_t ox = 0;
  size_t oy = 0;
  if (Tss2_MU_TPMT_PUBLIC_Marshal(&x, bx, sizeof(bx), &ox) != TSS2_RC_SUCCESS) return false;
  if (Tss2_MU_TPMT_PUBLIC_Marshal(&y, by, sizeof(by), &oy) != TSS2_RC_SUCCESS) return false;
  return ox == oy && std::memcmp(bx, by, ox) == 0;
}

}  // namespace tpm
}  // namespace spire_edge
