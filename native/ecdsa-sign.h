// ECDSA signing with a software key imported once, many signatures per thread-pool task
// (ecdsa-sign.cc): ecdsaSigningKey, ecdsaSigningKeyFree, ecdsaSignBatch.
#pragma once
#include <napi.h>

namespace spire_edge {

void InitEcdsaSign(Napi::Env env, Napi::Object exports);

}  // namespace spire_edge
