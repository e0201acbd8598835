// What every class of the addon shares: errno names, SystemError-shaped
// exceptions, the big-endian length of a batch record, and the counters'
// layout (native/index.d.ts STAT_*). Each class keeps its own hints.
#pragma once

#include <napi.h>
#include <uv.h>

#include <string.h>

#include <cstdint>
#include <string>

namespace tapswitch {

enum Stat { RX_FRAMES, RX_BYTES, TX_FRAMES, TX_BYTES, TX_DROPPED, TX_ERRORS,
            TX_MALFORMED, RX_ERRORS, STAT_COUNT };

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
inline void ThrowSystemError(Napi::Env env, int err, const std::string& syscall,
                             const std::string& subject, const char* path,
                             const char* hint) {
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

inline uint32_t ReadBE32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

}  // namespace tapswitch
