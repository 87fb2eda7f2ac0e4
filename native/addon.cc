#include "addon.h"

#include <cstring>

namespace spire_edge {

void ThrowErrno(Napi::Env env, const char* syscall, int err) {
  Napi::Error e = Napi::Error::New(env, std::string(syscall) + ": " + std::strerror(err));
  e.Set("code", Napi::String::New(env, "ERR_NATIVE_ERRNO"));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  e.ThrowAsJavaScriptException();
}

}  // namespace spire_edge

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  spire_edge::InitPeerCred(env, exports);
  spire_edge::InitEcdsaVerify(env, exports);
#ifdef SPIRE_EDGE_WITH_TPM
  spire_edge::InitTpm(env, exports);
#endif
  return exports;
}

NODE_API_MODULE(spire_edge_native, Init)
