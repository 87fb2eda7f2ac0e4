// The TPM operations. Each runs on a libuv worker thread with the context's mutex held,
// throws RcError on failure, and leaves no transient object or session behind on any path
// except the objects it hands to the context (Context::objects) on success.
//
// Parameter encryption (TPM 2.0 Part 1, 21 "Session-based encryption"): sessions that carry
// secrets are *salted* with a TPM-resident key (the EK or the SRK), so their session key is
// unknown to anyone on the bus, and AES-128-CFB encrypts the first command parameter
// (TPMA_SESSION_DECRYPT) or the first response parameter (TPMA_SESSION_ENCRYPT):
//   - ActivateCredential: the response's certInfo (the recovered secret);
//   - Seal (TPM2_Create): the command's inSensitive (the data being sealed);
//   - Unseal: the response's outData (the unsealed data).
// Nothing else carries secrets: quotes, PCRs, public areas and EK certificates are public,
// and the private blobs leave the TPM already wrapped by their parent.
#include <algorithm>
#include <cstring>

#include "tpm-internal.h"

namespace spire_edge {
namespace tpm {
namespace {

const TPMT_SYM_DEF kAes128Cfb = {TPM2_ALG_AES, {128}, {TPM2_ALG_CFB}};

// Sets a session's attributes to exactly `attrs` (always with continueSession, so that the
// session survives the command and the Flusher, not the TPM, decides when it goes).
void SetSessionAttrs(ESYS_CONTEXT* e, ESYS_TR session, TPMA_SESSION attrs) {
  Check(Esys_TRSess_SetAttributes(e, session, attrs | TPMA_SESSION_CONTINUESESSION, 0xFF),
        "Esys_TRSess_SetAttributes");
}

// An HMAC session, salted with `saltKey` when it is not ESYS_TR_NONE.
void StartHmacSession(ESYS_CONTEXT* e, ESYS_TR saltKey, Flusher& out) {
  Check(Esys_StartAuthSession(e, saltKey, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                              nullptr, TPM2_SE_HMAC, &kAes128Cfb, TPM2_ALG_SHA256, out.out()),
        "Esys_StartAuthSession");
  SetSessionAttrs(e, out.get(), 0);
}

void StartPolicySession(ESYS_CONTEXT* e, ESYS_TR saltKey, TPM2_SE type, TPMI_ALG_HASH hash,
                        Flusher& out) {
  Check(Esys_StartAuthSession(e, saltKey, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                              nullptr, type, &kAes128Cfb, hash, out.out()),
        "Esys_StartAuthSession");
  SetSessionAttrs(e, out.get(), 0);
}

const TPMT_PUBLIC& TrackedPublic(Context& ctx, ESYS_TR handle, const char* what) {
  auto it = ctx.objects.find(handle);
  if (it == ctx.objects.end()) {
    // ESYS would answer TSS2_ESYS_RC_BAD_TR for an unknown handle: give the same answer.
    throw RcError{"ERR_TPM_RC", TSS2_ESYS_RC_BAD_TR, what, "handle not open in this context"};
  }
  return it->second.pub;
}

// Starts the session that authorises USER-role use of an EK (as a parent, or as the key of
// ActivateCredential). Low-range EKs (L-1, L-2: userWithAuth CLEAR) demand PolicyA, i.e.
// TPM2_PolicySecret(TPM_RH_ENDORSEMENT) proved with the endorsement hierarchy's (empty)
// authValue; high-range EKs (userWithAuth SET) accept an HMAC session with the EK's own
// (empty) authValue, which avoids their PolicyOR. With `salt`, the session is salted with
// the EK so it can encrypt parameters.
void StartEkSession(Context& ctx, ESYS_TR ek, bool salt, Flusher& out) {
  ESYS_CONTEXT* e = ctx.esys;
  const TPMT_PUBLIC& pub = TrackedPublic(ctx, ek, "ek session");
  ESYS_TR saltKey = salt ? ek : ESYS_TR_NONE;
  if ((pub.objectAttributes & TPMA_OBJECT_USERWITHAUTH) != 0) {
    StartHmacSession(e, saltKey, out);
    return;
  }
  StartPolicySession(e, saltKey, TPM2_SE_POLICY, pub.nameAlg, out);
  TPM2B_TIMEOUT* timeout = nullptr;
  TPMT_TK_AUTH* ticket = nullptr;
  TSS2_RC rc = Esys_PolicySecret(e, ESYS_TR_RH_ENDORSEMENT, out.get(), ESYS_TR_PASSWORD,
                                 ESYS_TR_NONE, ESYS_TR_NONE, nullptr, nullptr, nullptr, 0,
                                 &timeout, &ticket);
  Esys_Free(timeout);
  Esys_Free(ticket);
  Check(rc, "Esys_PolicySecret");
}

// A transient primary SRK from the standard ECC P-256 storage template (owner hierarchy).
void CreateSrk(ESYS_CONTEXT* e, Flusher& out) {
  TPM2B_SENSITIVE_CREATE sensitive;
  std::memset(&sensitive, 0, sizeof(sensitive));
  TPM2B_PUBLIC tmpl = SrkTemplate();
  TPM2B_DATA outside = {};
  TPML_PCR_SELECTION creationPcr = {};
  TPM2B_PUBLIC* outPublic = nullptr;
  TPM2B_CREATION_DATA* creationData = nullptr;
  TPM2B_DIGEST* creationHash = nullptr;
  TPMT_TK_CREATION* creationTicket = nullptr;
  TSS2_RC rc = Esys_CreatePrimary(e, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                  ESYS_TR_NONE, &sensitive, &tmpl, &outside, &creationPcr,
                                  out.out(), &outPublic, &creationData, &creationHash,
                                  &creationTicket);
  Esys_Free(outPublic);
  Esys_Free(creationData);
  Esys_Free(creationHash);
  Esys_Free(creationTicket);
  Check(rc, "Esys_CreatePrimary(srk)");
}

uint16_t NvBufferMax(Context& ctx) {
  if (ctx.nvBufferMax != 0) return ctx.nvBufferMax;
  TPMI_YES_NO more = TPM2_NO;
  TPMS_CAPABILITY_DATA* cap = nullptr;
  Check(Esys_GetCapability(ctx.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                           TPM2_CAP_TPM_PROPERTIES, TPM2_PT_NV_BUFFER_MAX, 1, &more, &cap),
        "Esys_GetCapability(nv buffer max)");
  EsysPtr<TPMS_CAPABILITY_DATA> hold(cap);
  uint32_t v = 512;  // the PC Client minimum, if the TPM does not say
  const TPML_TAGGED_TPM_PROPERTY& props = cap->data.tpmProperties;
  if (props.count >= 1 && props.tpmProperty[0].property == TPM2_PT_NV_BUFFER_MAX) {
    v = props.tpmProperty[0].value;
  }
  v = std::min<uint32_t>(std::max<uint32_t>(v, 64), TPM2_MAX_NV_BUFFER_SIZE);
  ctx.nvBufferMax = static_cast<uint16_t>(v);
  return ctx.nvBufferMax;
}

Bytes FromBuffer(const uint8_t* p, size_t n) { return Bytes(p, p + n); }

void CopyIn(uint8_t* dst, size_t cap, UINT16* size, const Bytes& src, const char* what) {
  if (src.size() > cap) {
    throw RcError{"ERR_TPM_BLOB_INVALID", TSS2_MU_RC_BAD_SIZE, what, "too long"};
  }
  std::memcpy(dst, src.data(), src.size());
  *size = static_cast<UINT16>(src.size());
}

Out Marshalled(TSS2_RC (*marshal)(const TPMT_SIGNATURE*, uint8_t*, size_t, size_t*),
               const TPMT_SIGNATURE& v, const char* op) {
  Bytes buf(sizeof(TPMT_SIGNATURE) + 16);
  size_t off = 0;
  Check(marshal(&v, buf.data(), buf.size(), &off), op);
  buf.resize(off);
  return Out::OfBytes(std::move(buf));
}

}  // namespace

Bytes MarshalPublic(const TPM2B_PUBLIC& pub) {
  Bytes buf(sizeof(TPM2B_PUBLIC) + 16);
  size_t off = 0;
  Check(Tss2_MU_TPM2B_PUBLIC_Marshal(&pub, buf.data(), buf.size(), &off),
        "Tss2_MU_TPM2B_PUBLIC_Marshal");
  buf.resize(off);
  return buf;
}

Bytes MarshalPrivate(const TPM2B_PRIVATE& priv) {
  Bytes buf(sizeof(TPM2B_PRIVATE) + 16);
  size_t off = 0;
  Check(Tss2_MU_TPM2B_PRIVATE_Marshal(&priv, buf.data(), buf.size(), &off),
        "Tss2_MU_TPM2B_PRIVATE_Marshal");
  buf.resize(off);
  return buf;
}

TPM2B_PUBLIC UnmarshalPublic(const Bytes& b, const char* what) {
  TPM2B_PUBLIC pub;
  std::memset(&pub, 0, sizeof(pub));
  size_t off = 0;
  TSS2_RC rc = Tss2_MU_TPM2B_PUBLIC_Unmarshal(b.data(), b.size(), &off, &pub);
  if (rc != TSS2_RC_SUCCESS) throw RcError{"ERR_TPM_BLOB_INVALID", rc, what, ""};
  if (off != b.size()) {
    throw RcError{"ERR_TPM_BLOB_INVALID", TSS2_MU_RC_BAD_SIZE, what, "trailing bytes"};
  }
  return pub;
}

TPM2B_PRIVATE UnmarshalPrivate(const Bytes& b, const char* what) {
  TPM2B_PRIVATE priv;
  std::memset(&priv, 0, sizeof(priv));
  size_t off = 0;
  TSS2_RC rc = Tss2_MU_TPM2B_PRIVATE_Unmarshal(b.data(), b.size(), &off, &priv);
  if (rc != TSS2_RC_SUCCESS) throw RcError{"ERR_TPM_BLOB_INVALID", rc, what, ""};
  if (off != b.size()) {
    throw RcError{"ERR_TPM_BLOB_INVALID", TSS2_MU_RC_BAD_SIZE, what, "trailing bytes"};
  }
  return priv;
}

TPML_PCR_SELECTION PcrSelection(TPMI_ALG_HASH bank, uint32_t mask) {
  TPML_PCR_SELECTION sel;
  std::memset(&sel, 0, sizeof(sel));
  if (bank == TPM2_ALG_NULL) return sel;  // count 0: no PCRs
  sel.count = 1;
  sel.pcrSelections[0].hash = bank;
  sel.pcrSelections[0].sizeofSelect = 3;
  for (int i = 0; i < 24; i++) {
    if ((mask >> i) & 1u) sel.pcrSelections[0].pcrSelect[i / 8] |= static_cast<BYTE>(1u << (i % 8));
  }
  return sel;
}

// nvRead: the whole data area of an NV index, read in chunks of TPM2_PT_NV_BUFFER_MAX.
// Authorised with the index's own (empty) authValue when TPMA_NV_AUTHREAD is set, else
// with the owner's (empty) authValue when TPMA_NV_OWNERREAD is set.
Out OpNvRead(Context& ctx, uint32_t index) {
  ESYS_CONTEXT* e = ctx.esys;
  TrCloser nv(e);
  Check(Esys_TR_FromTPMPublic(e, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, nv.out()),
        "Esys_TR_FromTPMPublic(nv)");
  TPM2B_NV_PUBLIC* nvPub = nullptr;
  TPM2B_NAME* name = nullptr;
  TSS2_RC rc = Esys_NV_ReadPublic(e, nv.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nvPub,
                                  &name);
  EsysPtr<TPM2B_NV_PUBLIC> holdPub(nvPub);
  EsysPtr<TPM2B_NAME> holdName(name);
  Check(rc, "Esys_NV_ReadPublic");
  const TPMA_NV attrs = nvPub->nvPublic.attributes;
  ESYS_TR auth;
  if ((attrs & TPMA_NV_AUTHREAD) != 0) {
    auth = nv.get();
  } else if ((attrs & TPMA_NV_OWNERREAD) != 0) {
    auth = ESYS_TR_RH_OWNER;
  } else {
    throw RcError{"ERR_TPM_RC", TPM2_RC_NV_AUTHORIZATION, "nvRead",
                  "index readable neither with its authValue nor by the owner"};
  }
  const uint16_t size = nvPub->nvPublic.dataSize;
  const uint16_t chunk = NvBufferMax(ctx);
  Bytes out;
  out.reserve(size);
  for (uint16_t off = 0; off < size;) {
    const uint16_t n = std::min<uint16_t>(chunk, static_cast<uint16_t>(size - off));
    TPM2B_MAX_NV_BUFFER* data = nullptr;
    Check(Esys_NV_Read(e, auth, nv.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n, off,
                       &data),
          "Esys_NV_Read");
    EsysPtr<TPM2B_MAX_NV_BUFFER> hold(data);
    if (data->size == 0 || data->size > n) {
      throw RcError{"ERR_TPM_RC", TSS2_ESYS_RC_MALFORMED_RESPONSE, "Esys_NV_Read",
                    "unexpected chunk size"};
    }
    out.insert(out.end(), data->buffer, data->buffer + data->size);
    off = static_cast<uint16_t>(off + data->size);
  }
  return Out::OfBytes(std::move(out));
}

// createEk: the persistent EK at `persistent` when there is one made from the same template,
// otherwise a transient primary from the template (the TPM derives the same key every time).
Out OpCreateEk(Context& ctx, EkAlg alg, uint32_t persistent) {
  ESYS_CONTEXT* e = ctx.esys;
  TPM2B_PUBLIC tmpl = EkTemplate(alg);
  if (persistent != 0) {
    TrCloser tr(e);
    TSS2_RC rc =
        Esys_TR_FromTPMPublic(e, persistent, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, tr.out());
    if (rc == TSS2_RC_SUCCESS) {
      TPM2B_PUBLIC* pub = nullptr;
      TPM2B_NAME* name = nullptr;
      TPM2B_NAME* qname = nullptr;
      rc = Esys_ReadPublic(e, tr.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, &name,
                           &qname);
      EsysPtr<TPM2B_PUBLIC> holdPub(pub);
      EsysPtr<TPM2B_NAME> holdName(name);
      EsysPtr<TPM2B_NAME> holdQname(qname);
      Check(rc, "Esys_ReadPublic(ek)");
      if (SameTemplate(pub->publicArea, tmpl.publicArea)) {
        Out out = Out::Object();
        out.Set("publicArea", Out::OfBytes(MarshalPublic(*pub)));
        out.Set("persistent", Out::OfBool(true));
        ESYS_TR h = tr.release();
        ctx.objects[h] = TrackedObject{false, pub->publicArea};
        out.Set("handle", Out::OfNumber(h));
        return out;
      }
      // Something else lives there: fall through to the template, which is authoritative.
    } else if (TpmBaseRc(rc) != TPM2_RC_HANDLE) {
      Check(rc, "Esys_TR_FromTPMPublic(ek)");
    }
  }
  Flusher ek(e);
  TPM2B_SENSITIVE_CREATE sensitive;
  std::memset(&sensitive, 0, sizeof(sensitive));
  TPM2B_DATA outside = {};
  TPML_PCR_SELECTION creationPcr = {};
  TPM2B_PUBLIC* outPublic = nullptr;
  TPM2B_CREATION_DATA* creationData = nullptr;
  TPM2B_DIGEST* creationHash = nullptr;
  TPMT_TK_CREATION* creationTicket = nullptr;
  TSS2_RC rc = Esys_CreatePrimary(e, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                  ESYS_TR_NONE, &sensitive, &tmpl, &outside, &creationPcr,
                                  ek.out(), &outPublic, &creationData, &creationHash,
                                  &creationTicket);
  EsysPtr<TPM2B_PUBLIC> holdPub(outPublic);
  Esys_Free(creationData);
  Esys_Free(creationHash);
  Esys_Free(creationTicket);
  Check(rc, "Esys_CreatePrimary(ek)");
  Out out = Out::Object();
  out.Set("publicArea", Out::OfBytes(MarshalPublic(*outPublic)));
  out.Set("persistent", Out::OfBool(false));
  ESYS_TR h = ek.release();
  ctx.objects[h] = TrackedObject{true, outPublic->publicArea};
  out.Set("handle", Out::OfNumber(h));
  return out;
}

// createAk: a restricted signing key created as a child of the EK (TPM2_Create; not loaded).
Out OpCreateAk(Context& ctx, ESYS_TR ek, AkAlg alg) {
  ESYS_CONTEXT* e = ctx.esys;
  Flusher session(e);
  StartEkSession(ctx, ek, false, session);
  TPM2B_SENSITIVE_CREATE sensitive;
  std::memset(&sensitive, 0, sizeof(sensitive));
  TPM2B_PUBLIC tmpl = AkTemplate(alg);
  TPM2B_DATA outside = {};
  TPML_PCR_SELECTION creationPcr = {};
  TPM2B_PRIVATE* outPrivate = nullptr;
  TPM2B_PUBLIC* outPublic = nullptr;
  TPM2B_CREATION_DATA* creationData = nullptr;
  TPM2B_DIGEST* creationHash = nullptr;
  TPMT_TK_CREATION* creationTicket = nullptr;
  TSS2_RC rc = Esys_Create(e, ek, session.get(), ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &tmpl,
                           &outside, &creationPcr, &outPrivate, &outPublic, &creationData,
                           &creationHash, &creationTicket);
  EsysPtr<TPM2B_PRIVATE> holdPriv(outPrivate);
  EsysPtr<TPM2B_PUBLIC> holdPub(outPublic);
  Esys_Free(creationData);
  Esys_Free(creationHash);
  Esys_Free(creationTicket);
  Check(rc, "Esys_Create(ak)");
  Out out = Out::Object();
  out.Set("private", Out::OfBytes(MarshalPrivate(*outPrivate)));
  out.Set("public", Out::OfBytes(MarshalPublic(*outPublic)));
  return out;
}

// loadAk: loads AK blobs under the EK; returns the handle and the TPM's name of the key.
Out OpLoadAk(Context& ctx, ESYS_TR ek, const Bytes& privBytes, const Bytes& pubBytes) {
  ESYS_CONTEXT* e = ctx.esys;
  TPM2B_PRIVATE priv = UnmarshalPrivate(privBytes, "loadAk private");
  TPM2B_PUBLIC pub = UnmarshalPublic(pubBytes, "loadAk public");
  Flusher session(e);
  StartEkSession(ctx, ek, false, session);
  Flusher ak(e);
  Check(Esys_Load(e, ek, session.get(), ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, ak.out()),
        "Esys_Load(ak)");
  TPM2B_NAME* name = nullptr;
  Check(Esys_TR_GetName(e, ak.get(), &name), "Esys_TR_GetName");
  EsysPtr<TPM2B_NAME> holdName(name);
  Out out = Out::Object();
  out.Set("name", Out::OfBytes(FromBuffer(name->name, name->size)));
  ESYS_TR h = ak.release();
  ctx.objects[h] = TrackedObject{true, pub.publicArea};
  out.Set("handle", Out::OfNumber(h));
  return out;
}

// readPcrs: the digests of the selected PCRs of one bank, in ascending index order. A TPM
// returns at most 8 digests per TPM2_PCR_Read: repeat with what is left.
Out OpReadPcrs(Context& ctx, TPMI_ALG_HASH bank, uint32_t mask) {
  ESYS_CONTEXT* e = ctx.esys;
  std::map<int, Bytes> got;
  uint32_t left = mask;
  while (left != 0) {
    TPML_PCR_SELECTION sel = PcrSelection(bank, left);
    UINT32 counter = 0;
    TPML_PCR_SELECTION* selOut = nullptr;
    TPML_DIGEST* values = nullptr;
    TSS2_RC rc = Esys_PCR_Read(e, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel, &counter,
                               &selOut, &values);
    EsysPtr<TPML_PCR_SELECTION> holdSel(selOut);
    EsysPtr<TPML_DIGEST> holdValues(values);
    Check(rc, "Esys_PCR_Read");
    uint32_t returned = 0;
    for (UINT32 s = 0; s < selOut->count; s++) {
      const TPMS_PCR_SELECTION& ps = selOut->pcrSelections[s];
      if (ps.hash != bank) continue;
      for (int i = 0; i < 24 && i / 8 < ps.sizeofSelect; i++) {
        if ((ps.pcrSelect[i / 8] >> (i % 8)) & 1u) returned |= 1u << i;
      }
    }
    returned &= left;
    // The digests come in the order of the returned selection (ascending index).
    int k = 0;
    for (int i = 0; i < 24; i++) {
      if (((returned >> i) & 1u) == 0) continue;
      if (static_cast<UINT32>(k) >= values->count) break;
      got[i] = FromBuffer(values->digests[k].buffer, values->digests[k].size);
      k++;
    }
    if (returned == 0) {
      // The TPM answers an inactive bank (or unimplemented PCRs) with an empty selection.
      throw RcError{"ERR_TPM_PCR_UNAVAILABLE", 0, "Esys_PCR_Read",
                    "the tpm returned no digests: pcr bank not active or pcrs not implemented"};
    }
    if (static_cast<UINT32>(k) != values->count) {
      throw RcError{"ERR_TPM_RC", TSS2_ESYS_RC_MALFORMED_RESPONSE, "Esys_PCR_Read",
                    "digest count does not match the returned selection"};
    }
    left &= ~returned;
  }
  Out out = Out::List();
  for (auto& kv : got) out.items.push_back(Out::OfBytes(std::move(kv.second)));
  return out;
}

// quote: TPM2_Quote with the AK's own scheme over `nonce` and one bank's PCR selection.
Out OpQuote(Context& ctx, ESYS_TR ak, const Bytes& nonce, TPMI_ALG_HASH bank, uint32_t mask) {
  ESYS_CONTEXT* e = ctx.esys;
  TPM2B_DATA qualifying = {};
  CopyIn(qualifying.buffer, sizeof(qualifying.buffer), &qualifying.size, nonce, "quote nonce");
  TPMT_SIG_SCHEME scheme;
  std::memset(&scheme, 0, sizeof(scheme));
  scheme.scheme = TPM2_ALG_NULL;
  TPML_PCR_SELECTION sel = PcrSelection(bank, mask);
  TPM2B_ATTEST* quoted = nullptr;
  TPMT_SIGNATURE* signature = nullptr;
  TSS2_RC rc = Esys_Quote(e, ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &qualifying,
                          &scheme, &sel, &quoted, &signature);
  EsysPtr<TPM2B_ATTEST> holdQuoted(quoted);
  EsysPtr<TPMT_SIGNATURE> holdSig(signature);
  Check(rc, "Esys_Quote");
  Out out = Out::Object();
  out.Set("quoted", Out::OfBytes(FromBuffer(quoted->attestationData, quoted->size)));
  out.Set("signature", Marshalled(Tss2_MU_TPMT_SIGNATURE_Marshal, *signature,
                                  "Tss2_MU_TPMT_SIGNATURE_Marshal"));
  return out;
}

// activateCredential: the AK (activateHandle, ADMIN role: password, its authValue is empty)
// and the EK (keyHandle, USER role: the EK session, salted with the EK and encrypting the
// response's certInfo).
Out OpActivateCredential(Context& ctx, ESYS_TR ak, ESYS_TR ek, const Bytes& idObject,
                         const Bytes& encSecret) {
  ESYS_CONTEXT* e = ctx.esys;
  TPM2B_ID_OBJECT blob = {};
  CopyIn(blob.credential, sizeof(blob.credential), &blob.size, idObject, "credential idObject");
  TPM2B_ENCRYPTED_SECRET secret = {};
  CopyIn(secret.secret, sizeof(secret.secret), &secret.size, encSecret, "credential encSecret");
  Flusher session(e);
  StartEkSession(ctx, ek, true, session);
  SetSessionAttrs(e, session.get(), TPMA_SESSION_ENCRYPT);
  TPM2B_DIGEST* certInfo = nullptr;
  TSS2_RC rc = Esys_ActivateCredential(e, ak, ek, ESYS_TR_PASSWORD, session.get(), ESYS_TR_NONE,
                                       &blob, &secret, &certInfo);
  EsysPtr<TPM2B_DIGEST> hold(certInfo);
  Check(rc, "Esys_ActivateCredential");
  Bytes out = FromBuffer(certInfo->buffer, certInfo->size);
  std::memset(certInfo->buffer, 0, sizeof(certInfo->buffer));
  return Out::OfBytes(std::move(out));
}

// seal: TPM2_Create of a sealed data object under a transient SRK. With a PCR selection, the
// object's authPolicy is PolicyPCR over the selected PCRs' *current* values (computed by a
// trial session), and only that policy can unseal it.
Out OpSeal(Context& ctx, const Bytes& data, TPMI_ALG_HASH bank, uint32_t mask) {
  ESYS_CONTEXT* e = ctx.esys;
  TPM2B_SENSITIVE_CREATE sensitive;
  std::memset(&sensitive, 0, sizeof(sensitive));
  CopyIn(sensitive.sensitive.data.buffer, 128, &sensitive.sensitive.data.size, data,
         "seal data");
  TPM2B_DIGEST policy = {};
  if (bank != TPM2_ALG_NULL) {
    Flusher trial(e);
    StartPolicySession(e, ESYS_TR_NONE, TPM2_SE_TRIAL, TPM2_ALG_SHA256, trial);
    TPM2B_DIGEST empty = {};
    TPML_PCR_SELECTION sel = PcrSelection(bank, mask);
    Check(Esys_PolicyPCR(e, trial.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &empty, &sel),
          "Esys_PolicyPCR(trial)");
    TPM2B_DIGEST* digest = nullptr;
    Check(Esys_PolicyGetDigest(e, trial.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &digest),
          "Esys_PolicyGetDigest");
    policy = *digest;
    Esys_Free(digest);
  }
  TPM2B_PUBLIC tmpl = SealTemplate(bank != TPM2_ALG_NULL ? &policy : nullptr);
  Flusher srk(e);
  CreateSrk(e, srk);
  Flusher session(e);
  StartHmacSession(e, srk.get(), session);
  SetSessionAttrs(e, session.get(), TPMA_SESSION_DECRYPT);
  TPM2B_DATA outside = {};
  TPML_PCR_SELECTION creationPcr = {};
  TPM2B_PRIVATE* outPrivate = nullptr;
  TPM2B_PUBLIC* outPublic = nullptr;
  TPM2B_CREATION_DATA* creationData = nullptr;
  TPM2B_DIGEST* creationHash = nullptr;
  TPMT_TK_CREATION* creationTicket = nullptr;
  TSS2_RC rc = Esys_Create(e, srk.get(), session.get(), ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
                           &tmpl, &outside, &creationPcr, &outPrivate, &outPublic, &creationData,
                           &creationHash, &creationTicket);
  std::memset(&sensitive, 0, sizeof(sensitive));
  EsysPtr<TPM2B_PRIVATE> holdPriv(outPrivate);
  EsysPtr<TPM2B_PUBLIC> holdPub(outPublic);
  Esys_Free(creationData);
  Esys_Free(creationHash);
  Esys_Free(creationTicket);
  Check(rc, "Esys_Create(sealed)");
  Out out = Out::Object();
  out.Set("private", Out::OfBytes(MarshalPrivate(*outPrivate)));
  out.Set("public", Out::OfBytes(MarshalPublic(*outPublic)));
  return out;
}

// unseal: loads the sealed object under a transient SRK (flushed right after the load, so at
// most two objects are loaded at once) and unseals it through a session salted with the SRK
// that encrypts the response: an HMAC session, or the PolicyPCR session when sealed to PCRs.
Out OpUnseal(Context& ctx, const Bytes& privBytes, const Bytes& pubBytes, TPMI_ALG_HASH bank,
             uint32_t mask) {
  ESYS_CONTEXT* e = ctx.esys;
  TPM2B_PRIVATE priv = UnmarshalPrivate(privBytes, "unseal private");
  TPM2B_PUBLIC pub = UnmarshalPublic(pubBytes, "unseal public");
  Flusher srk(e);
  CreateSrk(e, srk);
  Flusher hmac(e);
  StartHmacSession(e, srk.get(), hmac);
  Flusher policy(e);
  if (bank != TPM2_ALG_NULL) {
    StartPolicySession(e, srk.get(), TPM2_SE_POLICY, TPM2_ALG_SHA256, policy);
  }
  Flusher item(e);
  Check(Esys_Load(e, srk.get(), hmac.get(), ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, item.out()),
        "Esys_Load(sealed)");
  ESYS_TR flushNow = srk.release();
  Check(Esys_FlushContext(e, flushNow), "Esys_FlushContext(srk)");
  ESYS_TR session = hmac.get();
  if (bank != TPM2_ALG_NULL) {
    TPM2B_DIGEST empty = {};
    TPML_PCR_SELECTION sel = PcrSelection(bank, mask);
    Check(Esys_PolicyPCR(e, policy.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &empty, &sel),
          "Esys_PolicyPCR");
    session = policy.get();
  }
  SetSessionAttrs(e, session, TPMA_SESSION_ENCRYPT);
  TPM2B_SENSITIVE_DATA* data = nullptr;
  TSS2_RC rc = Esys_Unseal(e, item.get(), session, ESYS_TR_NONE, ESYS_TR_NONE, &data);
  EsysPtr<TPM2B_SENSITIVE_DATA> hold(data);
  Check(rc, "Esys_Unseal");
  Bytes out = FromBuffer(data->buffer, data->size);
  std::memset(data->buffer, 0, sizeof(data->buffer));
  return Out::OfBytes(std::move(out));
}

Out OpFlush(Context& ctx, ESYS_TR handle) {
  auto it = ctx.objects.find(handle);
  if (it == ctx.objects.end()) {
    throw RcError{"ERR_TPM_RC", TSS2_ESYS_RC_BAD_TR, "flush", "handle not open in this context"};
  }
  const bool transient = it->second.transient;
  ctx.objects.erase(it);
  ESYS_TR h = handle;
  if (transient) {
    Check(Esys_FlushContext(ctx.esys, h), "Esys_FlushContext");
  } else {
    Check(Esys_TR_Close(ctx.esys, &h), "Esys_TR_Close");
  }
  return Out();
}

Out OpGetRandom(Context& ctx, uint32_t n) {
  Bytes out;
  out.reserve(n);
  while (out.size() < n) {
    const UINT16 want = static_cast<UINT16>(std::min<size_t>(n - out.size(), 32));
    TPM2B_DIGEST* r = nullptr;
    Check(Esys_GetRandom(ctx.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, want, &r),
          "Esys_GetRandom");
    EsysPtr<TPM2B_DIGEST> hold(r);
    if (r->size == 0 || r->size > want) {
      throw RcError{"ERR_TPM_RC", TSS2_ESYS_RC_MALFORMED_RESPONSE, "Esys_GetRandom",
                    "unexpected size"};
    }
    out.insert(out.end(), r->buffer, r->buffer + r->size);
  }
  return Out::OfBytes(std::move(out));
}

// handles: TPM2_GetCapability(TPM_CAP_HANDLES) from `first` within its handle type.
Out OpHandles(Context& ctx, TPM2_HANDLE first) {
  Out out = Out::List();
  const uint32_t type = first & 0xFF000000u;
  TPM2_HANDLE next = first;
  for (;;) {
    TPMI_YES_NO more = TPM2_NO;
    TPMS_CAPABILITY_DATA* cap = nullptr;
    Check(Esys_GetCapability(ctx.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                             TPM2_CAP_HANDLES, next, TPM2_MAX_CAP_HANDLES, &more, &cap),
          "Esys_GetCapability(handles)");
    EsysPtr<TPMS_CAPABILITY_DATA> hold(cap);
    const TPML_HANDLE& hs = cap->data.handles;
    bool done = hs.count == 0;
    for (UINT32 i = 0; i < hs.count; i++) {
      uint32_t t = hs.handle[i] & 0xFF000000u;
      // Loaded sessions are listed from the HMAC range through the policy range.
      if (t == (TPM2_HT_POLICY_SESSION << 24) && type == (TPM2_HT_HMAC_SESSION << 24)) t = type;
      if (t != type) {
        done = true;
        break;
      }
      out.items.push_back(Out::OfNumber(hs.handle[i]));
      next = hs.handle[i] + 1;
    }
    if (done || more != TPM2_YES) break;
  }
  return out;
}

}  // namespace tpm
}  // namespace spire_edge
