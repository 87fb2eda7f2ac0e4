// Caller identity for Unix-socket servers: SO_PEERCRED on the accepted socket, and a pidfd
// held for the caller so that a recycled PID cannot borrow another process's identity.
#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "addon.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

namespace spire_edge {
namespace {

bool FdArg(const Napi::CallbackInfo& info, size_t i, int* fd) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    Napi::TypeError::New(info.Env(), "expected a file descriptor number").ThrowAsJavaScriptException();
    return false;
  }
  *fd = info[i].As<Napi::Number>().Int32Value();
  if (*fd < 0) {
    Napi::TypeError::New(info.Env(), "file descriptor must be non-negative").ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

// peerCred(fd) -> { pid, uid, gid }. Fails with EAFNOSUPPORT unless fd is an AF_UNIX socket:
// on TCP sockets SO_PEERCRED "succeeds" with pid 0 and uid -1, which must never be trusted.
Napi::Value PeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd)) return env.Undefined();
  struct sockaddr_storage addr;
  socklen_t alen = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&addr), &alen) != 0) {
    ThrowErrno(env, "getsockname", errno);
    return env.Undefined();
  }
  if (addr.ss_family != AF_UNIX) {
    ThrowErrno(env, "peerCred", EAFNOSUPPORT);
    return env.Undefined();
  }
  struct ucred cred;
  socklen_t clen = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0) {
    ThrowErrno(env, "getsockopt", errno);
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, cred.pid));
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
  return out;
}

// pidfdOpen(pid) -> fd
Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "expected a pid").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int pid = info[0].As<Napi::Number>().Int32Value();
  if (pid <= 0) {
    Napi::TypeError::New(env, "pid must be positive").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  long fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) {
    ThrowErrno(env, "pidfd_open", errno);
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(fd));
}

// pidfdAlive(fd) -> boolean: signal 0 through the pidfd; ESRCH means the process has exited
// (the pidfd keeps referring to the original process even if its PID is reused).
Napi::Value PidfdAlive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd)) return env.Undefined();
  if (syscall(SYS_pidfd_send_signal, fd, 0, nullptr, 0) == 0) return Napi::Boolean::New(env, true);
  if (errno == ESRCH) return Napi::Boolean::New(env, false);
  ThrowErrno(env, "pidfd_send_signal", errno);
  return env.Undefined();
}

// closeFd(fd)
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd)) return env.Undefined();
  if (close(fd) != 0) ThrowErrno(env, "close", errno);
  return env.Undefined();
}

}  // namespace

void InitPeerCred(Napi::Env env, Napi::Object exports) {
  exports.Set("peerCred", Napi::Function::New(env, PeerCred));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen));
  exports.Set("pidfdAlive", Napi::Function::New(env, PidfdAlive));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
}

}  // namespace spire_edge
