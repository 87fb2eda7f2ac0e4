{
  "variables": {
    # The TPM layer needs the tpm2-tss headers (Debian: libtss2-dev). Without them the addon
    # is built without it (tpmOpen absent: openTpm reports ERR_NATIVE_UNAVAILABLE), so machines
    # that never touch a TPM (servers) still get peerCred. Force with: node-gyp rebuild -- -Dwith_tpm=0|1
    "with_tpm%": "<!(sh -c 'test -f /usr/include/tss2/tss2_esys.h && echo 1 || echo 0')"
  },
  "targets": [
    {
      "target_name": "spire_edge_native",
      "sources": ["native/addon.cc", "native/peercred.cc", "native/ecdsa-verify.cc", "native/ecdsa-sign.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      # ecdsa-verify.cc and ecdsa-sign.cc use OpenSSL's EC_KEY API (deprecated in OpenSSL 3, still exported by
      # Node, whose bundled OpenSSL headers it compiles against).
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-O2", "-Wno-deprecated-declarations"],
      "cflags_cc!": ["-fno-exceptions"],
      "conditions": [
        [
          "with_tpm==1",
          {
            "sources": ["native/tpm.cc", "native/tpm-ops.cc", "native/tpm-templates.cc"],
            "include_dirs": ["/usr/include/tss2"],
            "defines": ["SPIRE_EDGE_WITH_TPM=1"],
            "libraries": ["-ltss2-esys", "-ltss2-tctildr", "-ltss2-rc", "-ltss2-mu"]
          }
        ]
      ]
    }
  ]
}
