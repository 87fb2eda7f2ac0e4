// spire-edge native addon: a thin layer over OS and TPM facilities that Node does not expose.
// Policy, parsing and retries live in TypeScript; this layer only calls the system and
// reports errno / TSS2_RC values as error properties.
#pragma once
#include <napi.h>

namespace spire_edge {

// Throws a JS Error with `code` = "ERR_NATIVE_ERRNO" and `errno` / `syscall` properties.
void ThrowErrno(Napi::Env env, const char* syscall, int err);

void InitPeerCred(Napi::Env env, Napi::Object exports);

// ECDSA verification on the NIST curves with OpenSSL's EC API (ecdsa-verify.cc):
// ecdsaVerifySync, ecdsaVerify, ecdsaVerifyBatch.
void InitEcdsaVerify(Napi::Env env, Napi::Object exports);

// TPM 2.0 over tpm2-tss ESYS (tpm.cc): tpmOpen, tpmClose, tpmNvRead, tpmCreateEk, ...
void InitTpm(Napi::Env env, Napi::Object exports);

}  // namespace spire_edge
