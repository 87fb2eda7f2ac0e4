// ECDSA signature verification on the NIST curves with OpenSSL's low-level EC API, for the
// server's proof-of-possession checks on agent CSRs. Node's crypto.verify costs ~190 µs per
// fresh key on OpenSSL 3.0 (key import through the provider/decoder machinery, the curve
// group rebuilt, the legacy key converted on first use); here each thread keeps one EC_KEY
// per curve (group built once) and only decodes the point into it, so a check costs the
// hash, the point decode and ECDSA_verify.
//
// Same rules as Node's path (OpenSSL's ECDSA_verify is what its provider calls): the
// signature must be a DER ECDSA-Sig-Value with no trailing bytes (it is re-encoded and
// compared), r and s in [1, n-1]; a digest longer than the order is truncated (FIPS 186-4).
// The point must be an uncompressed point (04 || X || Y) of the curve's size, with
// coordinates below p and on the curve (the curves have cofactor 1, so it is in the group).
//
// Exports (results: 1 = the signature verifies, 0 = it does not, -1 = the point is not a
// valid public key of the curve):
//   ecdsaVerifySync(curve, hash, point, data, signature) -> number   (calling thread)
//   ecdsaVerify(curve, hash, point, data, signature) -> Promise<number>   (thread pool)
//   ecdsaVerifyBatch(items) -> Promise<Int8Array>   (one thread-pool task for all items;
//     items are { curve, hash, point, data, signature } objects)
//   ecdsaVerifyMany(kinds, blob, ends) -> Promise<Int8Array>   (the same as ecdsaVerifyBatch,
//     cheaper to marshal: kinds[i] = curve index * 3 + hash index (P-256, P-384, P-521;
//     sha256, sha384, sha512); item i's point, data and signature are the consecutive byte
//     ranges of blob ending at ends[3i], ends[3i+1], ends[3i+2] (a Uint32Array); copied)
// curve: "P-256" | "P-384" | "P-521"; hash: "sha256" | "sha384" | "sha512". Bad argument
// types or names throw TypeError synchronously.
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/sha.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "addon.h"
#include "ecdsa-sign.h"

namespace spire_edge {
namespace {

enum Curve { kP256 = 0, kP384 = 1, kP521 = 2, kCurveCount = 3 };
enum Hash { kSha256 = 0, kSha384 = 1, kSha512 = 2 };

const int kCurveNid[kCurveCount] = {NID_X9_62_prime256v1, NID_secp384r1, NID_secp521r1};
const size_t kFieldBytes[kCurveCount] = {32, 48, 66};

// Largest input accepted: a CSR's certificationRequestInfo is a few hundred bytes; 1 MiB
// bounds the copy for the thread pool.
const size_t kMaxData = 1 << 20;
// A DER ECDSA-Sig-Value for P-521 is at most 139 bytes.
const size_t kMaxSignature = 256;
const uint32_t kMaxBatch = 100000;

struct Job {
  Curve curve;
  Hash hash;
  std::vector<uint8_t> point;
  std::vector<uint8_t> data;
  std::vector<uint8_t> signature;
};

// One EC_KEY per curve and thread, created on first use and kept for the thread's life
// (libuv's pool threads and the main thread live as long as the process; nothing is freed
// at exit, so no destructor can run after OpenSSL's own cleanup).
EC_KEY* ThreadKey(Curve c) {
  thread_local EC_KEY* keys[kCurveCount] = {nullptr, nullptr, nullptr};
  if (keys[c] == nullptr) keys[c] = EC_KEY_new_by_curve_name(kCurveNid[c]);
  return keys[c];
}

int VerifyOne(Curve curve, Hash hash, const uint8_t* point, size_t point_len, const uint8_t* data,
              size_t data_len, const uint8_t* sig, size_t sig_len) {
  const size_t field = kFieldBytes[curve];
  if (point_len != 1 + 2 * field || point[0] != 0x04) return -1;
  EC_KEY* key = ThreadKey(curve);
  if (key == nullptr) {
    ERR_clear_error();
    return -1;
  }
  // EC_KEY_oct2key decodes into the key's point: coordinates must be below p and the point
  // on the curve (EC_POINT_set_affine_coordinates checks it).
  if (EC_KEY_oct2key(key, point, point_len, nullptr) != 1) {
    ERR_clear_error();
    return -1;
  }
  const EC_POINT* pub = EC_KEY_get0_public_key(key);
  const EC_GROUP* group = EC_KEY_get0_group(key);
  if (pub == nullptr || EC_POINT_is_at_infinity(group, pub) ||
      EC_POINT_is_on_curve(group, pub, nullptr) != 1) {
    ERR_clear_error();
    return -1;
  }
  unsigned char digest[SHA512_DIGEST_LENGTH];
  int digest_len;
  switch (hash) {
    case kSha256:
      SHA256(data, data_len, digest);
      digest_len = SHA256_DIGEST_LENGTH;
      break;
    case kSha384:
      SHA384(data, data_len, digest);
      digest_len = SHA384_DIGEST_LENGTH;
      break;
    default:
      SHA512(data, data_len, digest);
      digest_len = SHA512_DIGEST_LENGTH;
      break;
  }
  // 1 verifies; 0 does not; -1 malformed (not strict DER, trailing bytes, r or s out of
  // range): also a signature that does not verify.
  int ok = ECDSA_verify(0, digest, digest_len, sig, static_cast<int>(sig_len), key);
  if (ok != 1) ERR_clear_error();
  return ok == 1 ? 1 : 0;
}

int VerifyJob(const Job& j) {
  return VerifyOne(j.curve, j.hash, j.point.data(), j.point.size(), j.data.data(), j.data.size(),
                   j.signature.data(), j.signature.size());
}

bool ParseCurve(Napi::Env env, Napi::Value v, Curve* out) {
  if (v.IsString()) {
    std::string s = v.As<Napi::String>().Utf8Value();
    if (s == "P-256") {
      *out = kP256;
      return true;
    }
    if (s == "P-384") {
      *out = kP384;
      return true;
    }
    if (s == "P-521") {
      *out = kP521;
      return true;
    }
  }
  Napi::TypeError::New(env, "curve must be \"P-256\", \"P-384\" or \"P-521\"").ThrowAsJavaScriptException();
  return false;
}

bool ParseHash(Napi::Env env, Napi::Value v, Hash* out) {
  if (v.IsString()) {
    std::string s = v.As<Napi::String>().Utf8Value();
    if (s == "sha256") {
      *out = kSha256;
      return true;
    }
    if (s == "sha384") {
      *out = kSha384;
      return true;
    }
    if (s == "sha512") {
      *out = kSha512;
      return true;
    }
  }
  Napi::TypeError::New(env, "hash must be \"sha256\", \"sha384\" or \"sha512\"").ThrowAsJavaScriptException();
  return false;
}

// A Uint8Array (or Buffer) argument as a pointer and length into V8's memory: valid only
// until control returns to JavaScript.
bool BytesArg(Napi::Env env, Napi::Value v, const char* what, size_t max, const uint8_t** p,
              size_t* len) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    Napi::TypeError::New(env, std::string(what) + " must be a Uint8Array").ThrowAsJavaScriptException();
    return false;
  }
  Napi::Uint8Array a = v.As<Napi::Uint8Array>();
  if (a.ByteLength() > max) {
    Napi::TypeError::New(env, std::string(what) + " is too long").ThrowAsJavaScriptException();
    return false;
  }
  static const uint8_t kEmpty = 0;
  *p = a.ByteLength() == 0 ? &kEmpty : a.Data();
  *len = a.ByteLength();
  return true;
}

// Reads (curve, hash, point, data, signature) values into a job (copies the bytes).
bool ReadJob(Napi::Env env, Napi::Value curve, Napi::Value hash, Napi::Value point,
             Napi::Value data, Napi::Value sig, Job* job) {
  const uint8_t* p;
  size_t n;
  if (!ParseCurve(env, curve, &job->curve) || !ParseHash(env, hash, &job->hash)) return false;
  if (!BytesArg(env, point, "point", 1 + 2 * 66, &p, &n)) return false;
  job->point.assign(p, p + n);
  if (!BytesArg(env, data, "data", kMaxData, &p, &n)) return false;
  job->data.assign(p, p + n);
  if (!BytesArg(env, sig, "signature", kMaxSignature, &p, &n)) return false;
  job->signature.assign(p, p + n);
  return true;
}

bool CheckArgCount(const Napi::CallbackInfo& info, size_t n) {
  if (info.Length() < n) {
    Napi::TypeError::New(info.Env(), "expected (curve, hash, point, data, signature)")
        .ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

Napi::Value VerifySync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArgCount(info, 5)) return env.Undefined();
  Curve curve;
  Hash hash;
  const uint8_t *point, *data, *sig;
  size_t point_len, data_len, sig_len;
  if (!ParseCurve(env, info[0], &curve) || !ParseHash(env, info[1], &hash) ||
      !BytesArg(env, info[2], "point", 1 + 2 * 66, &point, &point_len) ||
      !BytesArg(env, info[3], "data", kMaxData, &data, &data_len) ||
      !BytesArg(env, info[4], "signature", kMaxSignature, &sig, &sig_len)) {
    return env.Undefined();
  }
  return Napi::Number::New(env, VerifyOne(curve, hash, point, point_len, data, data_len, sig, sig_len));
}

// Many checks whose bytes live in one block (ecdsaVerifyMany): for item i, the point, data
// and signature are blob[ends[3i-1] .. ends[3i]), [ends[3i] .. ends[3i+1]), [.. ends[3i+2]).
struct FlatJobs {
  std::vector<uint8_t> kinds;
  std::vector<uint8_t> blob;
  std::vector<size_t> ends;
};

class VerifyManyWorker : public Napi::AsyncWorker {
 public:
  VerifyManyWorker(Napi::Env env, FlatJobs jobs)
      : Napi::AsyncWorker(env, "spire-edge:ecdsaVerify"),
        deferred_(Napi::Promise::Deferred::New(env)),
        jobs_(std::move(jobs)),
        results_(jobs_.kinds.size(), 0) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    const uint8_t* b = jobs_.blob.data();
    size_t start = 0;
    for (size_t i = 0; i < jobs_.kinds.size(); i++) {
      const size_t p_end = jobs_.ends[3 * i], d_end = jobs_.ends[3 * i + 1],
                   s_end = jobs_.ends[3 * i + 2];
      const uint8_t k = jobs_.kinds[i];
      results_[i] = static_cast<int8_t>(VerifyOne(static_cast<Curve>(k / 3), static_cast<Hash>(k % 3),
                                                  b + start, p_end - start, b + p_end, d_end - p_end,
                                                  b + d_end, s_end - d_end));
      start = s_end;
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Int8Array out = Napi::Int8Array::New(env, results_.size());
    if (!results_.empty()) std::memcpy(out.Data(), results_.data(), results_.size());
    deferred_.Resolve(out);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  FlatJobs jobs_;
  std::vector<int8_t> results_;
};

Napi::Value VerifyMany(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto is = [&](size_t i, napi_typedarray_type t) {
    return info.Length() > i && info[i].IsTypedArray() && info[i].As<Napi::TypedArray>().TypedArrayType() == t;
  };
  if (!is(0, napi_uint8_array) || !is(1, napi_uint8_array) || !is(2, napi_uint32_array)) {
    Napi::TypeError::New(env, "expected (kinds: Uint8Array, blob: Uint8Array, ends: Uint32Array)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Uint8Array kinds = info[0].As<Napi::Uint8Array>();
  Napi::Uint8Array blob = info[1].As<Napi::Uint8Array>();
  Napi::Uint32Array ends = info[2].As<Napi::Uint32Array>();
  const size_t n = kinds.ByteLength();
  if (n > kMaxBatch || ends.ElementLength() != 3 * n) {
    Napi::TypeError::New(env, "ends must hold 3 offsets per kind (at most 100000 kinds)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  static const size_t kMax[3] = {1 + 2 * 66, kMaxData, kMaxSignature};
  static const char* const kWhat[3] = {"point", "data", "signature"};
  FlatJobs jobs;
  jobs.kinds.assign(kinds.Data(), kinds.Data() + n);
  jobs.ends.resize(3 * n);
  size_t prev = 0;
  for (size_t i = 0; i < 3 * n; i++) {
    const size_t e = ends[i];
    if (i % 3 == 0 && jobs.kinds[i / 3] >= 9) {
      Napi::TypeError::New(env, "kinds must be curve * 3 + hash, below 9").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (e < prev || e > blob.ByteLength()) {
      Napi::TypeError::New(env, "ends must be ascending offsets within blob").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (e - prev > kMax[i % 3]) {
      Napi::TypeError::New(env, std::string(kWhat[i % 3]) + " is too long").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    jobs.ends[i] = e;
    prev = e;
  }
  if (prev > 0) jobs.blob.assign(blob.Data(), blob.Data() + prev);
  auto* w = new VerifyManyWorker(env, std::move(jobs));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

class VerifyWorker : public Napi::AsyncWorker {
 public:
  VerifyWorker(Napi::Env env, std::vector<Job> jobs, bool batch)
      : Napi::AsyncWorker(env, "spire-edge:ecdsaVerify"),
        deferred_(Napi::Promise::Deferred::New(env)),
        jobs_(std::move(jobs)),
        results_(jobs_.size(), 0),
        batch_(batch) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    for (size_t i = 0; i < jobs_.size(); i++) results_[i] = static_cast<int8_t>(VerifyJob(jobs_[i]));
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (!batch_) {
      deferred_.Resolve(Napi::Number::New(env, results_[0]));
      return;
    }
    Napi::Int8Array out = Napi::Int8Array::New(env, results_.size());
    if (!results_.empty()) std::memcpy(out.Data(), results_.data(), results_.size());
    deferred_.Resolve(out);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<Job> jobs_;
  std::vector<int8_t> results_;
  bool batch_;
};

Napi::Value VerifyAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArgCount(info, 5)) return env.Undefined();
  std::vector<Job> jobs(1);
  if (!ReadJob(env, info[0], info[1], info[2], info[3], info[4], &jobs[0])) return env.Undefined();
  auto* w = new VerifyWorker(env, std::move(jobs), false);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value VerifyBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) {
    Napi::TypeError::New(env, "expected an array of { curve, hash, point, data, signature }")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array items = info[0].As<Napi::Array>();
  uint32_t n = items.Length();
  if (n > kMaxBatch) {
    Napi::TypeError::New(env, "too many items in one batch").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<Job> jobs(n);
  for (uint32_t i = 0; i < n; i++) {
    Napi::Value v = items.Get(i);
    if (!v.IsObject()) {
      Napi::TypeError::New(env, "batch items must be objects").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Object o = v.As<Napi::Object>();
    if (!ReadJob(env, o.Get("curve"), o.Get("hash"), o.Get("point"), o.Get("data"),
                 o.Get("signature"), &jobs[i])) {
      return env.Undefined();
    }
  }
  auto* w = new VerifyWorker(env, std::move(jobs), true);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace

void InitEcdsaVerify(Napi::Env env, Napi::Object exports) {
  exports.Set("ecdsaVerifySync", Napi::Function::New(env, VerifySync, "ecdsaVerifySync"));
  exports.Set("ecdsaVerify", Napi::Function::New(env, VerifyAsync, "ecdsaVerify"));
  exports.Set("ecdsaVerifyBatch", Napi::Function::New(env, VerifyBatch, "ecdsaVerifyBatch"));
  exports.Set("ecdsaVerifyMany", Napi::Function::New(env, VerifyMany, "ecdsaVerifyMany"));
  // The signing half of the ECDSA layer (ecdsa-sign.cc) registers with it.
  InitEcdsaSign(env, exports);
}

}  // namespace spire_edge
