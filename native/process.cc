// switchd's own process hardening, for its gateways (contract in native/index.d.ts):
//
// - setDumpable(false): prctl(PR_SET_DUMPABLE, 0). A process of the same user
//   (the gateway's QEMU child, when switchd is not root) can then neither
//   read /proc/<switchd>/environ (the admin token), /mem or /fd, nor ptrace
//   switchd; the cost is no core dumps, and gcore or strace -p need root.
//   Node has no prctl; nothing else here needs the addon for it.
// - landlockAbi(): the kernel's Landlock ABI (landlock.h), so that switchd
//   knows before starting a child whether the launcher can confine it, and
//   says so once when it cannot.
// - nofileLimit(): RLIMIT_NOFILE [soft, hard], the ceiling of what the
//   launcher may give the child without privilege.

#include <napi.h>

#include "landlock.h"
#include "sys_error.h"

#include <sys/prctl.h>
#include <sys/resource.h>

namespace tapswitch {
void InitProcess(Napi::Env env, Napi::Object exports);
}

namespace {

using namespace tapswitch;

Napi::Value SetDumpable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBoolean()) {
    Napi::TypeError::New(env, "setDumpable(on: boolean)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (prctl(PR_SET_DUMPABLE, info[0].As<Napi::Boolean>().Value() ? 1 : 0, 0, 0, 0) != 0) {
    ThrowSystemError(env, errno, "prctl(PR_SET_DUMPABLE)", "switchd", nullptr, "");
  }
  return env.Undefined();
}

Napi::Value IsDumpable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 1);
}

Napi::Value LandlockAbi(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), landlock::Abi()); }

Napi::Value NofileLimit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rlimit r;
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) {
    ThrowSystemError(env, errno, "getrlimit(RLIMIT_NOFILE)", "switchd", nullptr, "");
    return env.Undefined();
  }
  auto num = [&](rlim_t v) { return Napi::Number::New(env, v == RLIM_INFINITY ? 1e15 : static_cast<double>(v)); };
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, num(r.rlim_cur));
  out.Set(1u, num(r.rlim_max));
  return out;
}

}  // namespace

namespace tapswitch {

void InitProcess(Napi::Env env, Napi::Object exports) {
  exports.Set("setDumpable", Napi::Function::New(env, SetDumpable, "setDumpable"));
  exports.Set("isDumpable", Napi::Function::New(env, IsDumpable, "isDumpable"));
  exports.Set("landlockAbi", Napi::Function::New(env, LandlockAbi, "landlockAbi"));
  exports.Set("nofileLimit", Napi::Function::New(env, NofileLimit, "nofileLimit"));
}

}  // namespace tapswitch
