// What every class of the addon shares: errno names and SystemError-shaped
// exceptions. Each class keeps its own hints. The counters' layout and the
// batch records are batch.h's, slabs records.h's.
#pragma once

#include <napi.h>
#include <uv.h>

#include <string.h>

#include <cstdint>
#include <string>

namespace tapswitch {

inline std::string ErrnoName(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  if (const char* name = strerrorname_np(err)) return name;
#endif
  // libuv's table: on Unix UV_Exxx == -Exxx, so this names every common errno.
  char buf[64];
  return uv_err_name_r(-err, buf, sizeof buf);
}

// Throws a SystemError-shaped Error: `${syscall} ${subject}: ${code} (${hint})`,
// with code, errno, syscall, path (if any) and hint properties.
inline void ThrowSystemError(Napi::Env env, int err, const std::string& syscall, const std::string& subject,
                             const char* path, const char* hint) {
  std::string code = ErrnoName(err);
  std::string msg = syscall + " " + subject + ": " + code;
  if (*hint) msg += std::string(" (") + hint + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  if (path) e.Set("path", Napi::String::New(env, path));
  e.Set("hint", Napi::String::New(env, hint));
  e.ThrowAsJavaScriptException();
}

}  // namespace tapswitch
