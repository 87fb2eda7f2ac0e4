// ECDSA signing with a software CA key on the NIST curves P-256 and P-384, many digests per
// thread-pool task, for the server's X509-SVID issuance. Node's crypto.sign(…, callback)
// costs one thread-pool job, one OpenSSL 3 provider fetch and context set-up, and one
// JavaScript callback per signature; here a key is imported once into an OpenSSL EC_KEY and
// a whole batch of signatures is made in one task with ECDSA_do_sign (what OpenSSL's
// provider calls: constant-time scalar multiplication, the nonce derived from fresh random
// bytes, the private key and the digest).
//
// Key material: the private key enters as PKCS#8 DER (the caller zeroes its buffer), lives
// only in the EC_KEY, and is freed with EC_KEY_free (which clears the scalar) when the last
// of the JavaScript handle and the queued batches lets it go: ecdsaSigningKeyFree (or the
// handle's garbage collection) drops the handle's share; batches already queued finish with
// it. Nothing here ever returns or logs key bytes.
//
// Exports:
//   ecdsaSigningKey(pkcs8, curve) -> handle   (curve "P-256" | "P-384"; TypeError when the
//     bytes are not a PKCS#8 EC private key of that curve)
//   ecdsaSigningKeyFree(handle) -> void   (idempotent; later batches throw TypeError)
//   ecdsaSignBatch(handle, items) -> Promise<Uint8Array>   (items: Uint8Array[] of data to
//     hash and sign, SHA-256 for P-256, SHA-384 for P-384; the result holds one IEEE P1363
//     signature r || s per item, in order, each 2 × the field size: 64 or 96 bytes)
#include "ecdsa-sign.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace spire_edge {
namespace {

const uint32_t kMaxBatch = 100000;
// A tbsCertificate is a few hundred bytes; 1 MiB bounds one item's copy.
const size_t kMaxData = 1 << 20;
const size_t kMaxPkcs8 = 4096;

// Type tag of the handle's napi external, so no other external passes for one.
const napi_type_tag kKeyTag = {0x5a1f3c9e2b7d4e61ULL, 0x8c0b6f2a91d3e547ULL};

// The imported key; shared by the JavaScript handle and every queued batch.
struct SigningKey {
  EC_KEY* key = nullptr;
  bool p384 = false;
  size_t field = 0;
  ~SigningKey() {
    if (key != nullptr) EC_KEY_free(key);  // clears the private scalar
  }
};

// What the external points at: the handle's share of the key (reset by free).
struct KeyHandle {
  std::shared_ptr<SigningKey> key;
};

void FinalizeHandle(Napi::Env, KeyHandle* h) { delete h; }

bool ReadCurve(Napi::Env env, Napi::Value v, bool* p384) {
  if (v.IsString()) {
    std::string s = v.As<Napi::String>().Utf8Value();
    if (s == "P-256" || s == "P-384") {
      *p384 = s == "P-384";
      return true;
    }
  }
  Napi::TypeError::New(env, "curve must be \"P-256\" or \"P-384\"").ThrowAsJavaScriptException();
  return false;
}

Napi::Value CreateKey(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    Napi::TypeError::New(env, "expected (pkcs8: Uint8Array, curve)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  bool p384;
  if (!ReadCurve(env, info[1], &p384)) return env.Undefined();
  Napi::Uint8Array der = info[0].As<Napi::Uint8Array>();
  if (der.ByteLength() == 0 || der.ByteLength() > kMaxPkcs8) {
    Napi::TypeError::New(env, "pkcs8 must be 1 to 4096 bytes").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const unsigned char* p = der.Data();
  PKCS8_PRIV_KEY_INFO* p8 = d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, static_cast<long>(der.ByteLength()));
  if (p8 != nullptr && p != der.Data() + der.ByteLength()) {  // trailing bytes
    PKCS8_PRIV_KEY_INFO_free(p8);
    p8 = nullptr;
  }
  EVP_PKEY* pkey = p8 == nullptr ? nullptr : EVP_PKCS82PKEY(p8);
  PKCS8_PRIV_KEY_INFO_free(p8);  // clears the key octets
  EC_KEY* ec = pkey == nullptr ? nullptr : EVP_PKEY_get1_EC_KEY(pkey);
  EVP_PKEY_free(pkey);
  const EC_GROUP* group = ec == nullptr ? nullptr : EC_KEY_get0_group(ec);
  const int want = p384 ? NID_secp384r1 : NID_X9_62_prime256v1;
  if (group == nullptr || EC_GROUP_get_curve_name(group) != want ||
      EC_KEY_get0_private_key(ec) == nullptr || EC_KEY_get0_public_key(ec) == nullptr) {
    if (ec != nullptr) EC_KEY_free(ec);
    ERR_clear_error();
    Napi::TypeError::New(env, "pkcs8 is not an EC private key of the given curve")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto key = std::make_shared<SigningKey>();
  key->key = ec;
  key->p384 = p384;
  key->field = p384 ? 48 : 32;
  auto* handle = new KeyHandle{std::move(key)};
  Napi::External<KeyHandle> ext = Napi::External<KeyHandle>::New(env, handle, FinalizeHandle);
  if (napi_type_tag_object(env, ext, &kKeyTag) != napi_ok) {
    Napi::Error::New(env, "cannot tag the signing key handle").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return ext;
}

// The handle behind a JavaScript value, or null (with a TypeError thrown).
KeyHandle* HandleArg(Napi::Env env, Napi::Value v) {
  bool tagged = false;
  if (v.IsExternal()) napi_check_object_type_tag(env, v, &kKeyTag, &tagged);
  if (!tagged) {
    Napi::TypeError::New(env, "expected a signing key from ecdsaSigningKey").ThrowAsJavaScriptException();
    return nullptr;
  }
  return v.As<Napi::External<KeyHandle>>().Data();
}

Napi::Value FreeKey(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  KeyHandle* h = info.Length() < 1 ? nullptr : HandleArg(env, info[0]);
  if (h != nullptr) h->key.reset();
  return env.Undefined();
}

class SignWorker : public Napi::AsyncWorker {
 public:
  SignWorker(Napi::Env env, std::shared_ptr<SigningKey> key, std::vector<uint8_t> data,
             std::vector<size_t> ends)
      : Napi::AsyncWorker(env, "spire-edge:ecdsaSign"),
        deferred_(Napi::Promise::Deferred::New(env)),
        key_(std::move(key)),
        data_(std::move(data)),
        ends_(std::move(ends)),
        out_(ends_.size() * 2 * key_->field) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    const size_t field = key_->field;
    unsigned char digest[SHA384_DIGEST_LENGTH];
    size_t start = 0;
    for (size_t i = 0; i < ends_.size(); i++) {
      const uint8_t* d = data_.data() + start;
      const size_t len = ends_[i] - start;
      start = ends_[i];
      int digest_len;
      if (key_->p384) {
        SHA384(d, len, digest);
        digest_len = SHA384_DIGEST_LENGTH;
      } else {
        SHA256(d, len, digest);
        digest_len = SHA256_DIGEST_LENGTH;
      }
      ECDSA_SIG* sig = ECDSA_do_sign(digest, digest_len, key_->key);
      const BIGNUM* r = nullptr;
      const BIGNUM* s = nullptr;
      if (sig != nullptr) ECDSA_SIG_get0(sig, &r, &s);
      unsigned char* o = out_.data() + i * 2 * field;
      const bool ok = sig != nullptr && BN_bn2binpad(r, o, static_cast<int>(field)) == static_cast<int>(field) &&
                      BN_bn2binpad(s, o + field, static_cast<int>(field)) == static_cast<int>(field);
      ECDSA_SIG_free(sig);
      if (!ok) {
        unsigned long e = ERR_get_error();
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        ERR_clear_error();
        SetError(std::string("ECDSA_do_sign failed: ") + (e == 0 ? "unknown error" : buf));
        return;
      }
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Uint8Array out = Napi::Uint8Array::New(env, out_.size());
    if (!out_.empty()) std::memcpy(out.Data(), out_.data(), out_.size());
    deferred_.Resolve(out);
  }

  void OnError(const Napi::Error& e) override {
    e.Set("code", Napi::String::New(Env(), "ERR_NATIVE_SIGN_FAILED"));
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<SigningKey> key_;
  std::vector<uint8_t> data_;
  std::vector<size_t> ends_;
  std::vector<uint8_t> out_;
};

Napi::Value SignBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[1].IsArray()) {
    Napi::TypeError::New(env, "expected (key, items: Uint8Array[])").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  KeyHandle* h = HandleArg(env, info[0]);
  if (h == nullptr) return env.Undefined();
  if (!h->key) {
    Napi::TypeError::New(env, "the signing key was freed").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array items = info[1].As<Napi::Array>();
  const uint32_t n = items.Length();
  if (n > kMaxBatch) {
    Napi::TypeError::New(env, "too many items in one batch").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<uint8_t> data;
  std::vector<size_t> ends(n);
  for (uint32_t i = 0; i < n; i++) {
    Napi::Value v = items.Get(i);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      Napi::TypeError::New(env, "items must be Uint8Arrays").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Uint8Array a = v.As<Napi::Uint8Array>();
    if (a.ByteLength() > kMaxData) {
      Napi::TypeError::New(env, "an item is too long").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (i == 0) data.reserve(a.ByteLength() * n);
    if (a.ByteLength() > 0) data.insert(data.end(), a.Data(), a.Data() + a.ByteLength());
    ends[i] = data.size();
  }
  auto* w = new SignWorker(env, h->key, std::move(data), std::move(ends));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace

void InitEcdsaSign(Napi::Env env, Napi::Object exports) {
  exports.Set("ecdsaSigningKey", Napi::Function::New(env, CreateKey, "ecdsaSigningKey"));
  exports.Set("ecdsaSigningKeyFree", Napi::Function::New(env, FreeKey, "ecdsaSigningKeyFree"));
  exports.Set("ecdsaSignBatch", Napi::Function::New(env, SignBatch, "ecdsaSignBatch"));
}

}  // namespace spire_edge
