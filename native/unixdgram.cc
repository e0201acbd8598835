// tapswitch native Unix-datagram socket (class UnixDgram; contract in native/index.d.ts).
//
// Why: QEMU's `-netdev dgram` also speaks AF_UNIX SOCK_DGRAM (local.type=unix),
// but Node's dgram module only opens UDP sockets, and net only Unix streams.
// This is the missing socket, read like a Tap by poll_reader.h (see it for
// the reasons): a non-blocking fd watched by uv_poll on Node's own loop, each
// readable burst (64 datagrams / 64 KiB at most) received into a JS-owned
// append-only slab as [u32 BE length][frame] records and handed to JS in ONE
// MakeCallback. One datagram is one frame, both ways.
// - The peer is a remembered path used with sendto(2), never connect(2): a
//   restarted QEMU unlinks and re-binds its path, and we keep reaching it.
// - With a peer set, datagrams from any other sender address are dropped
//   (counted as RX_ERRORS): only our QEMU is heard.
// - A QEMU that is not running (ENOENT, ECONNREFUSED) or not reading (EAGAIN:
//   its queue holds net.unix.max_dgram_qlen datagrams) costs counted drops.

#include <napi.h>

#include "poll_reader.h"
#include "records.h"
#include "sys_error.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <string>

namespace tapswitch {
void InitUnixDgram(Napi::Env env, Napi::Object exports);
}

namespace {

using namespace tapswitch;  // the Tap's STAT_* layout, records, ThrowSystemError, PollReader

constexpr size_t kMaxDgram = kMaxFrame;  // as a TAP's largest read
constexpr uint32_t kBurstFrames = 64;
constexpr uint32_t kBurstBytes = 64 * 1024;

const char* HintFor(int err) {
  switch (err) {
    case EADDRINUSE: return "another process is bound to this path, or it exists and is not a socket";
    case EACCES:
    case EPERM: return "no write permission on the socket or its directory";
    case ENOENT: return "the directory does not exist";
    case ENAMETOOLONG: return "a Unix socket path is at most 107 bytes";
    default: return "";
  }
}

// SystemError-shaped (sys_error.h), with this class's hints; the subject is the socket path.
void ThrowSys(Napi::Env env, int err, const char* syscall, const std::string& path, const char* hint = nullptr) {
  ThrowSystemError(env, err, syscall, path, path.c_str(), hint != nullptr ? hint : HintFor(err));
}

void ThrowType(Napi::Env env, const char* msg) { Napi::TypeError::New(env, msg).ThrowAsJavaScriptException(); }

bool MakeAddr(const std::string& path, sockaddr_un* a, socklen_t* len) {
  if (path.empty() || path.size() >= sizeof a->sun_path || path.find('\0') != std::string::npos) return false;
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  memcpy(a->sun_path, path.data(), path.size());
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return true;
}

class UnixDgram : public Napi::ObjectWrap<UnixDgram>, PollReader::Source {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "UnixDgram",
                       {
                           InstanceAccessor<&UnixDgram::GetPath>("path"),
                           InstanceAccessor<&UnixDgram::GetFd>("fd"),
                           InstanceMethod<&UnixDgram::Start>("start"),
                           InstanceMethod<&UnixDgram::Connect>("connect"),
                           InstanceMethod<&UnixDgram::SendBatch>("sendBatch"),
                           InstanceMethod<&UnixDgram::Stats>("stats"),
                           InstanceMethod<&UnixDgram::Close>("close"),
                       });
  }

  explicit UnixDgram(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<UnixDgram>(info), reader_(this, this, stats_, "tapswitch:UnixDgram") {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) {
      ThrowType(env, "localPath must be a string");
      return;
    }  // ObjectWrap deletes us
    path_ = info[0].As<Napi::String>().Utf8Value();
    sockaddr_un addr;
    socklen_t len;
    if (!MakeAddr(path_, &addr, &len)) {
      ThrowSys(env, ENAMETOOLONG, "bind", path_, "a Unix socket path is 1 to 107 bytes, without NUL");
      return;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      int err = errno;
      ThrowSys(env, err, "socket", path_);
      return;
    }
    struct stat st;
    if (lstat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      // A socket file: stale (left by a run that died) unless someone is bound to it.
      int probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      bool alive = probe >= 0 && ::connect(probe, reinterpret_cast<sockaddr*>(&addr), len) == 0;
      if (probe >= 0) ::close(probe);
      if (!alive) unlink(path_.c_str());
    }
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) < 0) {
      int err = errno;
      ::close(fd);
      ThrowSys(env, err, "bind", path_);
      return;
    }
    if (lstat(path_.c_str(), &st) == 0) {
      dev_ = st.st_dev;
      ino_ = st.st_ino;
    }
    fd_ = fd;
  }

  // JS dropped us without close() (never started, or closed), or env teardown. No JS here.
  ~UnixDgram() override { CloseAll(); }

 private:
  Napi::Value GetPath(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), path_); }
  Napi::Value GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }

  void Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsFunction()) return ThrowType(env, "onMessages must be a function");
    if (fd_ < 0) return ThrowSys(env, EBADF, "uv_poll_start", path_, "the socket is closed");
    if (reader_.started()) return ThrowSys(env, EALREADY, "uv_poll_start", path_, "already started");
    const char* syscall = nullptr;
    int r = reader_.Start(env, fd_, info[0].As<Napi::Function>(), kBurstFrames, kBurstBytes, kMaxDgram, &syscall);
    if (r < 0) ThrowSys(env, -r, syscall, path_);
  }

  bool FromPeer(const sockaddr_un& from, socklen_t len) const {
    if (peer_path_.empty()) return true;
    size_t n = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    // recvfrom(2) reports the address's real length, which may exceed the
    // buffer it filled: never read past sun_path on its word.
    n = std::min(n, sizeof from.sun_path);
    return peer_path_.compare(0, std::string::npos, from.sun_path, strnlen(from.sun_path, n)) == 0;
  }

  // One recvfrom(2) into a record's payload. MSG_TRUNC reports a datagram's
  // real length, so an oversized one is seen (and dropped) rather than cut.
  ssize_t ReadRecord(uint8_t* dst) override {
    sockaddr_un from;
    socklen_t flen = sizeof from;
    ssize_t n;
    do n = recvfrom(fd_, dst, kMaxDgram, MSG_TRUNC, reinterpret_cast<sockaddr*>(&from), &flen);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) stats_[RX_ERRORS]++;
      return PollReader::kEnd;
    }
    // Strangers and oversized datagrams count toward the burst bound too.
    if (static_cast<size_t>(n) > kMaxDgram || !FromPeer(from, flen)) {
      stats_[RX_ERRORS]++;
      return PollReader::kSkip;
    }
    return n;
  }

  void Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) return ThrowType(env, "remotePath must be a string");
    std::string path = info[0].As<Napi::String>().Utf8Value();
    if (!MakeAddr(path, &peer_, &peer_len_))
      return ThrowSys(env, ENAMETOOLONG, "connect", path, "a Unix socket path is 1 to 107 bytes, without NUL");
    peer_path_ = path;
  }

  Napi::Value SendBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const uint8_t* p;
    size_t start, end;
    if (!BatchArgs(info, &p, &start, &end)) return env.Undefined();
    return Napi::Number::New(env, ForEachRecord(p, start, end, stats_, [this](const uint8_t* frame, size_t len) {
                               return SendFrame(frame, len);
                             }));
  }

  // One sendto(2) to the peer; drops and errors are counted, never thrown.
  bool SendFrame(const uint8_t* frame, size_t len) {
    ssize_t n = -1;
    int err = fd_ < 0 ? EBADF : peer_path_.empty() ? EDESTADDRREQ : 0;
    if (err == 0) {
      do n = sendto(fd_, frame, len, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&peer_), peer_len_);
      while (n < 0 && errno == EINTR);
      if (n < 0) err = errno;
    }
    if (n >= 0) {
      stats_[TX_FRAMES]++;
      stats_[TX_BYTES] += len;
      return true;
    }
    if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || err == ECONNREFUSED || err == ENOENT ||
        err == EDESTADDRREQ)
      stats_[TX_DROPPED]++;
    else
      stats_[TX_ERRORS]++;
    return false;
  }

  void Stats(const Napi::CallbackInfo& info) { CopyStats(info, stats_); }

  void Close(const Napi::CallbackInfo&) {
    reader_.Close();
    CloseAll();
  }

  void CloseAll() {
    reader_.CloseHandle();  // before the fd it polls
    if (fd_ < 0) return;
    ::close(fd_);
    fd_ = -1;
    // Unlink our socket file, not one a newer socket bound at the same path since.
    struct stat st;
    if (lstat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == dev_ && st.st_ino == ino_)
      unlink(path_.c_str());
  }

  int fd_ = -1;
  std::string path_, peer_path_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  sockaddr_un peer_ = {};
  socklen_t peer_len_ = 0;
  double stats_[STAT_COUNT] = {};
  PollReader reader_;  // last: its destructor may still close the handle
};

}  // namespace

namespace tapswitch {
void InitUnixDgram(Napi::Env env, Napi::Object exports) { exports.Set("UnixDgram", UnixDgram::Init(env)); }
}  // namespace tapswitch
