// TPM 2.0 access over tpm2-tss ESYS: flat functions over an opaque context handle, every TPM
// command async (a Napi::AsyncWorker on the libuv pool) returning a promise. In-flight work is
// counted so that tpmClose() waits for it; commands on one context are serialised by its
// mutex. TSS2_RC values reach JavaScript as error properties (`code` "ERR_TPM_RC", `rc`,
// `rcText` from Tss2_RC_Decode, `op`), never only in messages. Blobs go in and out
// marshalled; all parsing and policy live in TypeScript (src/tpm, src/tpm/device).
#include <stdlib.h>
#include <tss2_rc.h>
#include <tss2_tctildr.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <functional>

#include "addon.h"
#include "tpm-internal.h"

namespace spire_edge {
namespace tpm {

// Marks the externals this file hands out, so that a foreign object is never cast to Context.
const napi_type_tag kContextTag = {0x7370697265656467ULL, 0x65746d32636f6e74ULL};

Napi::Value Out::ToJs(Napi::Env env) const {
  switch (kind) {
    case Kind::Undefined:
      return env.Undefined();
    case Kind::Bytes:
      return Napi::Buffer<uint8_t>::Copy(env, bytes.data(), bytes.size());
    case Kind::Number:
      return Napi::Number::New(env, number);
    case Kind::Bool:
      return Napi::Boolean::New(env, flag);
    case Kind::List: {
      Napi::Array a = Napi::Array::New(env, items.size());
      for (size_t i = 0; i < items.size(); i++) a.Set(static_cast<uint32_t>(i), items[i].ToJs(env));
      return a;
    }
    case Kind::Object: {
      Napi::Object o = Napi::Object::New(env);
      for (const auto& f : fields) o.Set(f.first, f.second.ToJs(env));
      return o;
    }
  }
  return env.Undefined();
}

void Context::Teardown() {
  if (esys != nullptr) {
    for (auto& kv : objects) {
      ESYS_TR h = kv.first;
      if (kv.second.transient) {
        Esys_FlushContext(esys, h);
      } else {
        Esys_TR_Close(esys, &h);
      }
    }
    objects.clear();
    Esys_Finalize(&esys);
    esys = nullptr;
  }
  if (tcti != nullptr) {
    Tss2_TctiLdr_Finalize(&tcti);
    tcti = nullptr;
  }
}

namespace {

struct ErrorInfo {
  RcError err;
  std::string rcText;
};

Napi::Error MakeError(Napi::Env env, const ErrorInfo& info) {
  const RcError& e = info.err;
  std::string msg;
  if (e.code == "ERR_TPM_CLOSED") {
    msg = "tpm context is closed";
  } else if (e.rc == 0) {
    msg = e.op + " failed: " + e.detail;
  } else {
    char hex[16];
    std::snprintf(hex, sizeof(hex), "0x%x", e.rc);
    msg = e.op + " failed: " + info.rcText + " (rc " + hex + ")";
    if (!e.detail.empty()) msg += ": " + e.detail;
  }
  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("code", Napi::String::New(env, e.code));
  if (e.code != "ERR_TPM_CLOSED") err.Set("op", Napi::String::New(env, e.op));
  if (e.rc != 0) {
    err.Set("rc", Napi::Number::New(env, e.rc));
    err.Set("rcText", Napi::String::New(env, info.rcText));
  }
  return err;
}

ErrorInfo Capture(const RcError& e) {
  return ErrorInfo{e, e.rc == 0 ? std::string() : std::string(Tss2_RC_Decode(e.rc))};
}

class CloseWorker : public Napi::AsyncWorker {
 public:
  CloseWorker(Napi::Env env, Napi::Value handle, Context* ctx)
      : Napi::AsyncWorker(env, "spire_edge.tpmClose"),
        handle_(Napi::Reference<Napi::Value>::New(handle, 1)),
        ctx_(ctx) {}

  void Execute() override {
    std::lock_guard<std::mutex> lock(ctx_->mu);
    ctx_->Teardown();
  }

  void OnOK() override {
    ctx_->state = Context::State::Closed;
    std::vector<Napi::Promise::Deferred> waiters;
    waiters.swap(ctx_->closeWaiters);
    for (auto& d : waiters) d.Resolve(Env().Undefined());
  }

 private:
  Napi::Reference<Napi::Value> handle_;  // keeps the context alive until closed
  Context* ctx_;
};

void MaybeFinishClose(Napi::Env env, Napi::Value handle, Context* ctx) {
  if (ctx->state == Context::State::Closing && ctx->pending == 0) {
    (new CloseWorker(env, handle, ctx))->Queue();
  }
}

using Op = std::function<Out(Context&)>;

class TpmWorker : public Napi::AsyncWorker {
 public:
  TpmWorker(Napi::Env env, Napi::Value handle, Context* ctx, const char* name, Op op)
      : Napi::AsyncWorker(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        handle_(Napi::Reference<Napi::Value>::New(handle, 1)),
        ctx_(ctx),
        op_(std::move(op)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      std::lock_guard<std::mutex> lock(ctx_->mu);
      if (ctx_->esys == nullptr) throw RcError{"ERR_TPM_CLOSED", 0, "", ""};
      out_ = op_(*ctx_);
    } catch (const RcError& e) {
      failed_ = true;
      error_ = Capture(e);
    } catch (const std::exception& e) {
      failed_ = true;
      error_ = ErrorInfo{RcError{"ERR_TPM_RC", TSS2_BASE_RC_GENERAL_FAILURE, "native", e.what()},
                         "general failure"};
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    ctx_->pending--;
    if (failed_) {
      deferred_.Reject(MakeError(env, error_).Value());
    } else {
      deferred_.Resolve(out_.ToJs(env));
    }
    MaybeFinishClose(env, handle_.Value(), ctx_);
  }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Value> handle_;
  Context* ctx_;
  Op op_;
  Out out_;
  bool failed_ = false;
  ErrorInfo error_;
};

class OpenWorker : public Napi::AsyncWorker {
 public:
  OpenWorker(Napi::Env env, std::string conf)
      : Napi::AsyncWorker(env, "spire_edge.tpmOpen"),
        deferred_(Napi::Promise::Deferred::New(env)),
        conf_(std::move(conf)) {}

  ~OpenWorker() override {
    if (ctx_ != nullptr) {
      ctx_->Teardown();
      delete ctx_;
    }
  }

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    auto* ctx = new Context();
    TSS2_RC rc = Tss2_TctiLdr_Initialize(conf_.c_str(), &ctx->tcti);
    if (rc != TSS2_RC_SUCCESS) {
      ctx->tcti = nullptr;
      delete ctx;
      failed_ = true;
      error_ = Capture(RcError{"ERR_TPM_RC", rc, "Tss2_TctiLdr_Initialize", conf_});
      return;
    }
    rc = Esys_Initialize(&ctx->esys, ctx->tcti, nullptr);
    if (rc != TSS2_RC_SUCCESS) {
      ctx->esys = nullptr;
      ctx->Teardown();
      delete ctx;
      failed_ = true;
      error_ = Capture(RcError{"ERR_TPM_RC", rc, "Esys_Initialize", ""});
      return;
    }
    ctx_ = ctx;
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (failed_) {
      deferred_.Reject(MakeError(env, error_).Value());
      return;
    }
    Context* ctx = ctx_;
    ctx_ = nullptr;
    // Last resort for a context that was never closed: flush and finalise when collected.
    auto external = Napi::External<Context>::New(env, ctx, [](Napi::Env, Context* c) {
      {
        std::lock_guard<std::mutex> lock(c->mu);
        c->Teardown();
      }
      delete c;
    });
    external.TypeTag(&kContextTag);
    deferred_.Resolve(external);
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string conf_;
  Context* ctx_ = nullptr;
  bool failed_ = false;
  ErrorInfo error_;
};

// ---- argument helpers: bad arguments throw TypeError synchronously ----

bool TypeErr(Napi::Env env, const std::string& msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  return false;
}

bool ContextArg(const Napi::CallbackInfo& info, Context** out) {
  if (info.Length() < 1 || !info[0].IsExternal() ||
      !info[0].As<Napi::External<Context>>().CheckTypeTag(&kContextTag)) {
    return TypeErr(info.Env(), "expected a tpm context from tpmOpen");
  }
  *out = info[0].As<Napi::External<Context>>().Data();
  return true;
}

bool U32Arg(const Napi::CallbackInfo& info, size_t i, const char* what, uint32_t* out) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    return TypeErr(info.Env(), std::string(what) + " must be a number");
  }
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || d != static_cast<double>(static_cast<uint32_t>(d))) {
    return TypeErr(info.Env(), std::string(what) + " must be an unsigned 32-bit integer");
  }
  *out = static_cast<uint32_t>(d);
  return true;
}

bool BytesArg(const Napi::CallbackInfo& info, size_t i, const char* what, Bytes* out) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    return TypeErr(info.Env(), std::string(what) + " must be a Uint8Array");
  }
  Napi::Uint8Array a = info[i].As<Napi::Uint8Array>();
  out->assign(a.Data(), a.Data() + a.ByteLength());
  return true;
}

bool StringArg(const Napi::CallbackInfo& info, size_t i, const char* what, std::string* out) {
  if (info.Length() <= i || !info[i].IsString()) {
    return TypeErr(info.Env(), std::string(what) + " must be a string");
  }
  *out = info[i].As<Napi::String>().Utf8Value();
  return true;
}

// A PCR bank name and a list of indices (0..23, no duplicates) → hash alg + bitmask.
// With `optional`, a null/undefined bank means "no PCRs" (TPM2_ALG_NULL, mask 0).
bool PcrArgs(const Napi::CallbackInfo& info, size_t i, bool optional, TPMI_ALG_HASH* bank,
             uint32_t* mask) {
  Napi::Env env = info.Env();
  *bank = TPM2_ALG_NULL;
  *mask = 0;
  if (optional && (info.Length() <= i || info[i].IsNull() || info[i].IsUndefined())) return true;
  std::string name;
  if (!StringArg(info, i, "pcr bank", &name)) return false;
  if (name == "sha1") {
    *bank = TPM2_ALG_SHA1;
  } else if (name == "sha256") {
    *bank = TPM2_ALG_SHA256;
  } else if (name == "sha384") {
    *bank = TPM2_ALG_SHA384;
  } else if (name == "sha512") {
    *bank = TPM2_ALG_SHA512;
  } else {
    return TypeErr(env, "pcr bank must be sha1, sha256, sha384 or sha512");
  }
  if (info.Length() <= i + 1 || !info[i + 1].IsArray()) {
    return TypeErr(env, "pcr indices must be an array");
  }
  Napi::Array a = info[i + 1].As<Napi::Array>();
  if (a.Length() == 0) return TypeErr(env, "pcr indices must not be empty");
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value v = a.Get(k);
    if (!v.IsNumber()) return TypeErr(env, "pcr indices must be numbers");
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= 23) || d != static_cast<double>(static_cast<int>(d))) {
      return TypeErr(env, "pcr index must be an integer in 0..23");
    }
    uint32_t bit = 1u << static_cast<int>(d);
    if ((*mask & bit) != 0) return TypeErr(env, "pcr indices must not repeat");
    *mask |= bit;
  }
  return true;
}

Napi::Value Run(const Napi::CallbackInfo& info, Context* ctx, const char* name, Op op) {
  Napi::Env env = info.Env();
  if (ctx->state != Context::State::Open) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(MakeError(env, ErrorInfo{RcError{"ERR_TPM_CLOSED", 0, name, ""}, ""}).Value());
    return d.Promise();
  }
  ctx->pending++;
  auto* w = new TpmWorker(env, info[0], ctx, name, std::move(op));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// ---- exported functions ----

// tpmOpen(tcti: string): Promise<TpmContext>
Napi::Value Open(const Napi::CallbackInfo& info) {
  std::string conf;
  if (!StringArg(info, 0, "tcti", &conf)) return info.Env().Undefined();
  if (conf.empty()) {
    TypeErr(info.Env(), "tcti must not be empty");
    return info.Env().Undefined();
  }
  auto* w = new OpenWorker(info.Env(), conf);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// tpmClose(ctx): Promise<void> — waits for queued and running commands, then flushes every
// transient object this context loaded and finalises ESYS and the TCTI. Idempotent.
Napi::Value Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Context* ctx;
  if (!ContextArg(info, &ctx)) return env.Undefined();
  auto d = Napi::Promise::Deferred::New(env);
  if (ctx->state == Context::State::Closed) {
    d.Resolve(env.Undefined());
    return d.Promise();
  }
  ctx->closeWaiters.push_back(d);
  if (ctx->state == Context::State::Open) {
    ctx->state = Context::State::Closing;
    MaybeFinishClose(env, info[0], ctx);
  }
  return d.Promise();
}

// tpmNvRead(ctx, index): Promise<Buffer>
Napi::Value NvRead(const Napi::CallbackInfo& info) {
  Context* ctx;
  uint32_t index;
  if (!ContextArg(info, &ctx) || !U32Arg(info, 1, "nv index", &index)) return Napi::Value();
  if ((index >> 24) != TPM2_HT_NV_INDEX) {
    TypeErr(info.Env(), "nv index must be in 0x01000000..0x01ffffff");
    return Napi::Value();
  }
  return Run(info, ctx, "spire_edge.tpmNvRead", [index](Context& c) { return OpNvRead(c, index); });
}

bool EkAlgArg(const Napi::CallbackInfo& info, size_t i, EkAlg* out) {
  std::string s;
  if (!StringArg(info, i, "ek algorithm", &s)) return false;
  if (s == "rsa") {
    *out = EkAlg::Rsa2048;
  } else if (s == "ecc-p256") {
    *out = EkAlg::EccP256;
  } else if (s == "ecc-p384") {
    *out = EkAlg::EccP384;
  } else {
    return TypeErr(info.Env(), "ek algorithm must be rsa, ecc-p256 or ecc-p384");
  }
  return true;
}

// tpmCreateEk(ctx, alg, persistentHandle?): Promise<{ handle, publicArea, persistent }>
Napi::Value CreateEk(const Napi::CallbackInfo& info) {
  Context* ctx;
  EkAlg alg = EkAlg::Rsa2048;
  uint32_t persistent = 0;
  if (!ContextArg(info, &ctx) || !EkAlgArg(info, 1, &alg)) return Napi::Value();
  if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
    if (!U32Arg(info, 2, "persistent handle", &persistent)) return Napi::Value();
    if ((persistent >> 24) != TPM2_HT_PERSISTENT) {
      TypeErr(info.Env(), "persistent handle must be in 0x81000000..0x81ffffff");
      return Napi::Value();
    }
  }
  return Run(info, ctx, "spire_edge.tpmCreateEk",
             [alg, persistent](Context& c) { return OpCreateEk(c, alg, persistent); });
}

// tpmCreateAk(ctx, ekHandle, alg): Promise<{ private, public }>
Napi::Value CreateAk(const Napi::CallbackInfo& info) {
  Context* ctx;
  uint32_t ek;
  std::string s;
  if (!ContextArg(info, &ctx) || !U32Arg(info, 1, "ek handle", &ek) ||
      !StringArg(info, 2, "ak algorithm", &s)) {
    return Napi::Value();
  }
  AkAlg alg;
  if (s == "ecc-p256") {
    alg = AkAlg::EccP256;
  } else if (s == "rsa-2048") {
    alg = AkAlg::Rsa2048;
  } else {
    TypeErr(info.Env(), "ak algorithm must be ecc-p256 or rsa-2048");
    return Napi::Value();
  }
  return Run(info, ctx, "spire_edge.tpmCreateAk",
             [ek, alg](Context& c) { return OpCreateAk(c, ek, alg); });
}

// tpmLoadAk(ctx, ekHandle, private, public): Promise<{ handle, name }>
Napi::Value LoadAk(const Napi::CallbackInfo& info) {
  Context* ctx;
  uint32_t ek;
  Bytes priv;
  Bytes pub;
  if (!ContextArg(info, &ctx) || !U32Arg(info, 1, "ek handle", &ek) ||
      !BytesArg(info, 2, "private", &priv) || !BytesArg(info, 3, "public", &pub)) {
    return Napi::Value();
  }
  return Run(info, ctx, "spire_edge.tpmLoadAk", [ek, priv, pub](Context& c) {
    return OpLoadAk(c, ek, priv, pub);
  });
}

// tpmReadPcrs(ctx, bank, indices): Promise<Buffer[]> (ascending index order)
Napi::Value ReadPcrs(const Napi::CallbackInfo& info) {
  Context* ctx;
  TPMI_ALG_HASH bank;
  uint32_t mask;
  if (!ContextArg(info, &ctx) || !PcrArgs(info, 1, false, &bank, &mask)) return Napi::Value();
  return Run(info, ctx, "spire_edge.tpmReadPcrs",
             [bank, mask](Context& c) { return OpReadPcrs(c, bank, mask); });
}

// tpmQuote(ctx, akHandle, nonce, bank, indices): Promise<{ quoted, signature }>
Napi::Value Quote(const Napi::CallbackInfo& info) {
  Context* ctx;
  uint32_t ak;
  Bytes nonce;
  TPMI_ALG_HASH bank;
  uint32_t mask;
  if (!ContextArg(info, &ctx) || !U32Arg(info, 1, "ak handle", &ak) ||
      !BytesArg(info, 2, "nonce", &nonce) || !PcrArgs(info, 3, false, &bank, &mask)) {
    return Napi::Value();
  }
  if (nonce.size() > sizeof(TPMU_HA)) {
    TypeErr(info.Env(), "nonce must be at most 64 bytes");
    return Napi::Value();
  }
  return Run(info, ctx, "spire_edge.tpmQuote", [ak, nonce, bank, mask](Context& c) {
    return OpQuote(c, ak, nonce, bank, mask);
  });
}

// tpmActivateCredential(ctx, akHandle, ekHandle, idObject, encSecret): Promise<Buffer>
Napi::Value ActivateCredential(const Napi::CallbackInfo& info) {
  Context* ctx;
  uint32_t ak;
  uint32_t ek;
  Bytes idObject;
  Bytes encSecret;
  if (!ContextArg(info, &ctx) || !U32Arg(info, 1, "ak handle", &ak) ||
      !U32Arg(info, 2, "ek handle", &ek) || !BytesArg(info, 3, "idObject", &idObject) ||
      !BytesArg(info, 4, "encSecret", &encSecret)) {
    return Napi::Value();
  }
  return Run(info, ctx, "spire_edge.tpmActivateCredential",
             [ak, ek, idObject, encSecret](Context& c) {
               return OpActivateCredential(c, ak, ek, idObject, encSecret);
             });
}

// tpmSeal(ctx, data, bank | null, indices): Promise<{ private, public }>
Napi::Value Seal(const Napi::CallbackInfo& info) {
  Context* ctx;
  Bytes data;
  TPMI_ALG_HASH bank;
  uint32_t mask;
  if (!ContextArg(info, &ctx) || !BytesArg(info, 1, "data", &data) ||
      !PcrArgs(info, 2, true, &bank, &mask)) {
    return Napi::Value();
  }
  if (data.empty() || data.size() > 128) {
    TypeErr(info.Env(), "data must be 1..128 bytes");
    return Napi::Value();
  }
  return Run(info, ctx, "spire_edge.tpmSeal", [data, bank, mask](Context& c) mutable {
    Out out = OpSeal(c, data, bank, mask);
    std::fill(data.begin(), data.end(), 0);
    return out;
  });
}

// tpmUnseal(ctx, private, public, bank | null, indices): Promise<Buffer>
Napi::Value Unseal(const Napi::CallbackInfo& info) {
  Context* ctx;
  Bytes priv;
  Bytes pub;
  TPMI_ALG_HASH bank;
  uint32_t mask;
  if (!ContextArg(info, &ctx) || !BytesArg(info, 1, "private", &priv) ||
      !BytesArg(info, 2, "public", &pub) || !PcrArgs(info, 3, true, &bank, &mask)) {
    return Napi::Value();
  }
  return Run(info, ctx, "spire_edge.tpmUnseal", [priv, pub, bank, mask](Context& c) {
    return OpUnseal(c, priv, pub, bank, mask);
  });
}

// tpmFlush(ctx, handle): Promise<void>
Napi::Value Flush(const Napi::CallbackInfo& info) {
  Context* ctx;
  uint32_t handle;
  if (!ContextArg(info, &ctx) || !U32Arg(info, 1, "handle", &handle)) return Napi::Value();
  return Run(info, ctx, "spire_edge.tpmFlush",
             [handle](Context& c) { return OpFlush(c, handle); });
}

// tpmGetRandom(ctx, n): Promise<Buffer>
Napi::Value GetRandom(const Napi::CallbackInfo& info) {
  Context* ctx;
  uint32_t n;
  if (!ContextArg(info, &ctx) || !U32Arg(info, 1, "n", &n)) return Napi::Value();
  if (n == 0 || n > 65536) {
    TypeErr(info.Env(), "n must be 1..65536");
    return Napi::Value();
  }
  return Run(info, ctx, "spire_edge.tpmGetRandom", [n](Context& c) { return OpGetRandom(c, n); });
}

// tpmHandles(ctx, kind: 'transient' | 'persistent' | 'loaded-session'): Promise<number[]>
// The TPM's own view (TPM2_GetCapability), including handles other clients left behind.
Napi::Value Handles(const Napi::CallbackInfo& info) {
  Context* ctx;
  std::string kind;
  if (!ContextArg(info, &ctx) || !StringArg(info, 1, "kind", &kind)) return Napi::Value();
  TPM2_HANDLE first;
  if (kind == "transient") {
    first = TPM2_TRANSIENT_FIRST;
  } else if (kind == "persistent") {
    first = TPM2_PERSISTENT_FIRST;
  } else if (kind == "loaded-session") {
    first = TPM2_LOADED_SESSION_FIRST;
  } else {
    TypeErr(info.Env(), "kind must be transient, persistent or loaded-session");
    return Napi::Value();
  }
  return Run(info, ctx, "spire_edge.tpmHandles",
             [first](Context& c) { return OpHandles(c, first); });
}

}  // namespace
}  // namespace tpm

void InitTpm(Napi::Env env, Napi::Object exports) {
  // tpm2-tss logs warnings and errors to stderr by default; errors reach JavaScript as
  // properties instead. TSS2_LOG set by the user (e.g. all+debug) still wins.
  setenv("TSS2_LOG", "all+none", 0);
  exports.Set("tpmOpen", Napi::Function::New(env, tpm::Open));
  exports.Set("tpmClose", Napi::Function::New(env, tpm::Close));
  exports.Set("tpmNvRead", Napi::Function::New(env, tpm::NvRead));
  exports.Set("tpmCreateEk", Napi::Function::New(env, tpm::CreateEk));
  exports.Set("tpmCreateAk", Napi::Function::New(env, tpm::CreateAk));
  exports.Set("tpmLoadAk", Napi::Function::New(env, tpm::LoadAk));
  exports.Set("tpmReadPcrs", Napi::Function::New(env, tpm::ReadPcrs));
  exports.Set("tpmQuote", Napi::Function::New(env, tpm::Quote));
  exports.Set("tpmActivateCredential", Napi::Function::New(env, tpm::ActivateCredential));
  exports.Set("tpmSeal", Napi::Function::New(env, tpm::Seal));
  exports.Set("tpmUnseal", Napi::Function::New(env, tpm::Unseal));
  exports.Set("tpmFlush", Napi::Function::New(env, tpm::Flush));
  exports.Set("tpmGetRandom", Napi::Function::New(env, tpm::GetRandom));
  exports.Set("tpmHandles", Napi::Function::New(env, tpm::Handles));
}

}  // namespace spire_edge
