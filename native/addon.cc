#include "addon.h"

#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace spire_edge {

void ThrowErrno(Napi::Env env, const char* syscall, int err) {
  Napi::Error e = Napi::Error::New(env, std::string(syscall) + ": " + std::strerror(err));
  e.Set("code", Napi::String::New(env, "ERR_NATIVE_ERRNO"));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  e.ThrowAsJavaScriptException();
}

}  // namespace spire_edge

#if defined(__GLIBC__)
// mallocTrim(): glibc's malloc_trim(0), returning freed heap memory to the OS; true when some
// was released. The agent calls it after minting many SVIDs (src/agent/manager/release-memory.ts).
static Napi::Value MallocTrim(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
}
#endif

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  spire_edge::InitPeerCred(env, exports);
  spire_edge::InitEcdsaVerify(env, exports);
#if defined(__GLIBC__)
  exports.Set("mallocTrim", Napi::Function::New(env, MallocTrim, "mallocTrim"));
#endif
#ifdef SPIRE_EDGE_WITH_TPM
  spire_edge::InitTpm(env, exports);
#endif
  return exports;
}

NODE_API_MODULE(spire_edge_native, Init)
