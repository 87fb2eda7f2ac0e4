// Internal declarations shared by the TPM files of the addon (tpm.cc, tpm-ops.cc,
// tpm-templates.cc). Nothing here is visible to JavaScript.
//
// Threading model: every TPM command runs on a libuv worker thread while holding the
// context's mutex, so calls on one ESYS context are serialised even if JavaScript does not
// serialise them; the main thread only touches the bookkeeping fields marked "main thread".
#pragma once

#include <napi.h>
#include <tss2_esys.h>
#include <tss2_mu.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace spire_edge {
namespace tpm {

using Bytes = std::vector<uint8_t>;

// An error out of a TSS call (or a check that stands in for one), carried out of the worker
// thread and turned into a JS Error with `code`, `rc`, `rcText` and `op` properties.
struct RcError {
  // "ERR_TPM_RC", "ERR_TPM_BLOB_INVALID", "ERR_TPM_CLOSED", "ERR_TPM_PCR_UNAVAILABLE"
  std::string code;
  TSS2_RC rc;  // 0 when no TSS call failed (closed, pcr unavailable)
  std::string op;  // the TSS function (or step) that failed
  std::string detail;  // extra words for the message; never secrets
};

// Throws RcError{"ERR_TPM_RC"} when rc is not TSS2_RC_SUCCESS.
inline void Check(TSS2_RC rc, const char* op) {
  if (rc != TSS2_RC_SUCCESS) throw RcError{"ERR_TPM_RC", rc, op, ""};
}

// The TPM_RC without its handle/session/parameter number (format-one codes only), for
// comparisons such as "is this TPM_RC_HANDLE": layer bits must be zero (a TPM response).
inline TSS2_RC TpmBaseRc(TSS2_RC rc) {
  if ((rc & 0xFFFF0000u) != 0) return rc;
  if ((rc & 0x80u) != 0) return rc & 0xBFu;  // TPM2_RC_FMT1 | error number
  return rc;
}

// unique_ptr deleter for structures ESYS allocates for its out-parameters.
struct EsysFree {
  void operator()(void* p) const { Esys_Free(p); }
};
template <typename T>
using EsysPtr = std::unique_ptr<T, EsysFree>;

// Flushes a transient object or session when it goes out of scope (also on error paths),
// unless release()d to a longer-lived owner.
class Flusher {
 public:
  explicit Flusher(ESYS_CONTEXT* esys) : esys_(esys) {}
  Flusher(const Flusher&) = delete;
  Flusher& operator=(const Flusher&) = delete;
  ~Flusher() {
    if (handle_ != ESYS_TR_NONE) Esys_FlushContext(esys_, handle_);
  }
  ESYS_TR* out() { return &handle_; }
  ESYS_TR get() const { return handle_; }
  ESYS_TR release() {
    ESYS_TR h = handle_;
    handle_ = ESYS_TR_NONE;
    return h;
  }

 private:
  ESYS_CONTEXT* esys_;
  ESYS_TR handle_ = ESYS_TR_NONE;
};

// Closes an ESYS_TR that refers to a persistent object or NV index (no TPM command).
class TrCloser {
 public:
  explicit TrCloser(ESYS_CONTEXT* esys) : esys_(esys) {}
  TrCloser(const TrCloser&) = delete;
  TrCloser& operator=(const TrCloser&) = delete;
  ~TrCloser() {
    if (handle_ != ESYS_TR_NONE) Esys_TR_Close(esys_, &handle_);
  }
  ESYS_TR* out() { return &handle_; }
  ESYS_TR get() const { return handle_; }
  ESYS_TR release() {
    ESYS_TR h = handle_;
    handle_ = ESYS_TR_NONE;
    return h;
  }

 private:
  ESYS_CONTEXT* esys_;
  ESYS_TR handle_ = ESYS_TR_NONE;
};

// An object this context loaded or opened: flushed (transient) or closed (persistent) by
// tpmFlush and by tpmClose.
struct TrackedObject {
  bool transient;
  TPMT_PUBLIC pub;
};

struct Context {
  TSS2_TCTI_CONTEXT* tcti = nullptr;
  ESYS_CONTEXT* esys = nullptr;
  // Serialises every use of `esys` and guards the fields below it.
  std::mutex mu;
  std::map<ESYS_TR, TrackedObject> objects;
  uint16_t nvBufferMax = 0;  // TPM2_PT_NV_BUFFER_MAX, read once

  // Main thread only.
  enum class State { Open, Closing, Closed } state = State::Open;
  uint32_t pending = 0;  // queued or running workers
  std::vector<Napi::Promise::Deferred> closeWaiters;

  // Flushes every tracked transient object, closes persistent references and finalises
  // ESYS and the TCTI. Caller holds `mu`. Idempotent.
  void Teardown();
};

// A small value tree built on the worker thread and turned into JS on the main thread.
struct Out {
  enum class Kind { Undefined, Bytes, Number, Bool, List, Object } kind = Kind::Undefined;
  Bytes bytes;
  double number = 0;
  bool flag = false;
  std::vector<Out> items;
  std::vector<std::pair<std::string, Out>> fields;

  static Out OfBytes(Bytes b) {
    Out o;
    o.kind = Kind::Bytes;
    o.bytes = std::move(b);
    return o;
  }
  static Out OfNumber(double n) {
    Out o;
    o.kind = Kind::Number;
    o.number = n;
    return o;
  }
  static Out OfBool(bool b) {
    Out o;
    o.kind = Kind::Bool;
    o.flag = b;
    return o;
  }
  static Out List() {
    Out o;
    o.kind = Kind::List;
    return o;
  }
  static Out Object() {
    Out o;
    o.kind = Kind::Object;
    return o;
  }
  Out& Set(const char* name, Out v) {
    fields.emplace_back(name, std::move(v));
    return *this;
  }
  Napi::Value ToJs(Napi::Env env) const;
};

// ---- algorithms and templates (tpm-templates.cc) ----

enum class EkAlg { Rsa2048, EccP256, EccP384 };
enum class AkAlg { EccP256, Rsa2048 };

// TCG EK Credential Profile 2.x default templates: L-1 (RSA 2048), L-2 (ECC NIST P-256),
// H-3 (ECC NIST P-384).
TPM2B_PUBLIC EkTemplate(EkAlg alg);
// Restricted signing key: fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|restricted|
// sign, ECDSA-SHA256 on P-256 or RSASSA-SHA256 on RSA-2048.
TPM2B_PUBLIC AkTemplate(AkAlg alg);
// TCG Provisioning Guidance ECC NIST P-256 storage root key template.
TPM2B_PUBLIC SrkTemplate();
// A sealed data object (KEYEDHASH, no scheme); with a policy digest, usable only by policy.
TPM2B_PUBLIC SealTemplate(const TPM2B_DIGEST* policy);
// Whether two public areas are equal in everything but `unique` (the key itself).
bool SameTemplate(const TPMT_PUBLIC& a, const TPMT_PUBLIC& b);

// ---- marshalling helpers (tpm-ops.cc) ----

Bytes MarshalPublic(const TPM2B_PUBLIC& pub);
Bytes MarshalPrivate(const TPM2B_PRIVATE& priv);
TPM2B_PUBLIC UnmarshalPublic(const Bytes& b, const char* what);
TPM2B_PRIVATE UnmarshalPrivate(const Bytes& b, const char* what);
TPML_PCR_SELECTION PcrSelection(TPMI_ALG_HASH bank, uint32_t mask);

// ---- operations, run on a worker thread with ctx.mu held (tpm-ops.cc) ----

Out OpNvRead(Context& ctx, uint32_t index);
Out OpCreateEk(Context& ctx, EkAlg alg, uint32_t persistent);
Out OpCreateAk(Context& ctx, ESYS_TR ek, AkAlg alg);
Out OpLoadAk(Context& ctx, ESYS_TR ek, const Bytes& priv, const Bytes& pub);
Out OpReadPcrs(Context& ctx, TPMI_ALG_HASH bank, uint32_t mask);
Out OpQuote(Context& ctx, ESYS_TR ak, const Bytes& nonce, TPMI_ALG_HASH bank, uint32_t mask);
Out OpActivateCredential(Context& ctx, ESYS_TR ak, ESYS_TR ek, const Bytes& idObject,
                         const Bytes& encSecret);
Out OpSeal(Context& ctx, const Bytes& data, TPMI_ALG_HASH bank, uint32_t mask);
Out OpUnseal(Context& ctx, const Bytes& priv, const Bytes& pub, TPMI_ALG_HASH bank,
             uint32_t mask);
Out OpFlush(Context& ctx, ESYS_TR handle);
Out OpGetRandom(Context& ctx, uint32_t n);
Out OpHandles(Context& ctx, TPM2_HANDLE first);

}  // namespace tpm
}  // namespace spire_edge
