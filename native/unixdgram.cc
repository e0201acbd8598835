// tapswitch native Unix-datagram socket (class UnixDgram; contract in native/index.d.ts).
//
// Why: QEMU's `-netdev dgram` also speaks AF_UNIX SOCK_DGRAM (local.type=unix),
// but Node's dgram module only opens UDP sockets, and net only Unix streams.
// This is the missing socket, built like tap.cc (see its header for the
// reasons): a non-blocking fd watched by a uv_poll_t on Node's own loop, each
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

#include "sys_error.h"
#include <uv.h>

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>

namespace tapswitch { void InitUnixDgram(Napi::Env env, Napi::Object exports); }

namespace {

constexpr size_t kMaxDgram = 65536 + 64;  // as tap.cc's kMaxRead
constexpr uint32_t kBurstFrames = 64;
constexpr size_t kBurstBytes = 64 * 1024;
constexpr size_t kSlabReserve = 4 + kMaxDgram + kBurstBytes;  // a whole burst always fits
constexpr size_t kSlabSize = 1 << 20;
using namespace tapswitch;  // the Tap's STAT_* layout, ReadBE32, ThrowSystemError

const char* HintFor(int err) {
  switch (err) {
    case EADDRINUSE: return "another process is bound to this path, or it exists and is not a socket";
    case EACCES: case EPERM: return "no write permission on the socket or its directory";
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


class UnixDgram : public Napi::ObjectWrap<UnixDgram> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "UnixDgram", {
      InstanceAccessor<&UnixDgram::GetPath>("path"),
      InstanceAccessor<&UnixDgram::GetFd>("fd"),
      InstanceMethod<&UnixDgram::Start>("start"),
      InstanceMethod<&UnixDgram::Connect>("connect"),
      InstanceMethod<&UnixDgram::SendBatch>("sendBatch"),
      InstanceMethod<&UnixDgram::Stats>("stats"),
      InstanceMethod<&UnixDgram::Close>("close"),
    });
  }

  explicit UnixDgram(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UnixDgram>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) { ThrowType(env, "localPath must be a string"); return; }  // ObjectWrap deletes us
    path_ = info[0].As<Napi::String>().Utf8Value();
    sockaddr_un addr;
    socklen_t len;
    if (!MakeAddr(path_, &addr, &len)) { ThrowSys(env, ENAMETOOLONG, "bind", path_, "a Unix socket path is 1 to 107 bytes, without NUL"); return; }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { int err = errno; ThrowSys(env, err, "socket", path_); return; }
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
    if (lstat(path_.c_str(), &st) == 0) { dev_ = st.st_dev; ino_ = st.st_ino; }
    fd_ = fd;
    async_ = std::make_unique<Napi::AsyncContext>(env, "tapswitch:UnixDgram", info.This().As<Napi::Object>());
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
    if (poll_ != nullptr) return ThrowSys(env, EALREADY, "uv_poll_start", path_, "already started");
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr)
      return Napi::Error::New(env, "napi_get_uv_event_loop failed").ThrowAsJavaScriptException();
    auto* box = new PollBox{};
    int r = uv_poll_init(loop, &box->handle, fd_);
    if (r < 0) { delete box; return ThrowSys(env, -r, "uv_poll_init", path_); }
    box->self = this;
    box->handle.data = box;
    poll_ = box;
    // Node waits for this hook's removal (in OnPollClosed) before unloading us.
    if (napi_add_async_cleanup_hook(env, OnEnvTeardown, box, &box->hook) != napi_ok) {
      ClosePoll();
      return Napi::Error::New(env, "napi_add_async_cleanup_hook failed").ThrowAsJavaScriptException();
    }
    if ((r = uv_poll_start(&box->handle, UV_READABLE, OnPoll)) < 0) { ClosePoll(); return ThrowSys(env, -r, "uv_poll_start", path_); }
    NewSlab(env);
    on_messages_ = Napi::Persistent(info[0].As<Napi::Function>());
    polling_ = true;
    Ref();  // the poll handle points at us
  }

  void StopPolling() {
    if (!polling_) return;
    polling_ = false;
    if (poll_) uv_poll_stop(&poll_->handle);
    on_messages_.Reset();
    Unref();
  }

  void NewSlab(Napi::Env env) {
    Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::New(env, kSlabSize);
    slab_ = Napi::Persistent(buf);  // views of the old slab keep it alive
    slab_data_ = buf.Data();
    slab_off_ = 0;
  }

  static void OnPoll(uv_poll_t* h, int status, int) { static_cast<PollBox*>(h->data)->self->OnReadable(status); }

  bool FromPeer(const sockaddr_un& from, socklen_t len) const {
    if (peer_path_.empty()) return true;
    size_t n = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    // recvfrom(2) reports the address's real length, which may exceed the
    // buffer it filled: never read past sun_path on its word.
    n = std::min(n, sizeof from.sun_path);
    return peer_path_.compare(0, std::string::npos, from.sun_path, strnlen(from.sun_path, n)) == 0;
  }

  void OnReadable(int status) {
    if (fd_ < 0 || !polling_) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (status < 0) { stats_[RX_ERRORS]++; StopPolling(); return; }  // libuv already stopped the watcher
    const size_t start = slab_off_;
    size_t off = start;
    uint32_t count = 0, reads = 0;  // strangers count toward the bound too
    while (reads < kBurstFrames && off - start < kBurstBytes && kSlabSize - off >= 4 + kMaxDgram) {
      sockaddr_un from;
      socklen_t flen = sizeof from;
      ssize_t n = recvfrom(fd_, slab_data_ + off + 4, kMaxDgram, MSG_TRUNC, reinterpret_cast<sockaddr*>(&from), &flen);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) stats_[RX_ERRORS]++;
        break;
      }
      reads++;
      if (static_cast<size_t>(n) > kMaxDgram || !FromPeer(from, flen)) { stats_[RX_ERRORS]++; continue; }
      uint8_t* p = slab_data_ + off;
      p[0] = n >> 24; p[1] = n >> 16; p[2] = n >> 8; p[3] = n;
      off += 4 + n;
      count++;
      stats_[RX_FRAMES]++;
      stats_[RX_BYTES] += n;
    }
    slab_off_ = off;
    if (count > 0) {
      Napi::Function fn = on_messages_.Value();  // the callback may close() us
      fn.MakeCallback(Value(), {slab_.Value(), Napi::Number::New(env, double(start)),
                                Napi::Number::New(env, double(off)), Napi::Number::New(env, count)}, *async_);
      if (env.IsExceptionPending()) napi_fatal_exception(env, env.GetAndClearPendingException().Value());
    }
    if (fd_ >= 0 && !slab_.IsEmpty() && kSlabSize - slab_off_ < kSlabReserve) NewSlab(env);
  }

  void Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) return ThrowType(env, "remotePath must be a string");
    std::string path = info[0].As<Napi::String>().Utf8Value();
    if (!MakeAddr(path, &peer_, &peer_len_)) return ThrowSys(env, ENAMETOOLONG, "connect", path, "a Unix socket path is 1 to 107 bytes, without NUL");
    peer_path_ = path;
  }

  Napi::Value SendBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsBuffer() || !info[1].IsNumber() || !info[2].IsNumber())
      return ThrowType(env, "sendBatch(buf: Buffer, start: number, end: number)"), env.Undefined();
    auto buf = info[0].As<Napi::Buffer<uint8_t>>();
    double start = info[1].As<Napi::Number>().DoubleValue(), end = info[2].As<Napi::Number>().DoubleValue();
    if (!(start >= 0 && start <= end && end <= double(buf.Length())))
      return Napi::RangeError::New(env, "start/end out of range").ThrowAsJavaScriptException(), env.Undefined();
    const uint8_t* p = buf.Data();
    size_t off = size_t(start), stop = size_t(end);
    uint32_t sent = 0;
    while (off < stop) {
      if (stop - off < 4 || ReadBE32(p + off) > stop - off - 4) { stats_[TX_MALFORMED]++; break; }
      uint32_t len = ReadBE32(p + off);
      ssize_t n = -1;
      int err = fd_ < 0 ? EBADF : peer_path_.empty() ? EDESTADDRREQ : 0;
      if (err == 0) {
        do n = sendto(fd_, p + off + 4, len, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&peer_), peer_len_);
        while (n < 0 && errno == EINTR);
        if (n < 0) err = errno;
      }
      if (n >= 0) { sent++; stats_[TX_FRAMES]++; stats_[TX_BYTES] += len; }
      else if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || err == ECONNREFUSED || err == ENOENT || err == EDESTADDRREQ) stats_[TX_DROPPED]++;
      else stats_[TX_ERRORS]++;
      off += 4 + size_t(len);
    }
    return Napi::Number::New(env, sent);
  }

  void Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      return ThrowType(env, "out must be a Float64Array");
    auto out = info[0].As<Napi::Float64Array>();
    if (out.ElementLength() < STAT_COUNT) return Napi::RangeError::New(env, "out is shorter than STAT_COUNT").ThrowAsJavaScriptException();
    for (int i = 0; i < STAT_COUNT; i++) out[i] = stats_[i];
  }

  void Close(const Napi::CallbackInfo&) {
    StopPolling();
    CloseAll();
    slab_.Reset();
  }

  // libuv owns the handle until its close callback, which frees the box.
  void ClosePoll() {
    if (!poll_) return;
    PollBox* box = poll_;
    poll_ = nullptr;
    box->self = nullptr;
    uv_poll_stop(&box->handle);
    uv_close(reinterpret_cast<uv_handle_t*>(&box->handle), OnPollClosed);
  }

  static void OnPollClosed(uv_handle_t* h) {
    auto* box = static_cast<PollBox*>(h->data);
    if (box->hook) napi_remove_async_cleanup_hook(box->hook);
    delete box;
  }

  static void OnEnvTeardown(napi_async_cleanup_hook_handle, void* arg) {
    auto* box = static_cast<PollBox*>(arg);
    if (box->self == nullptr) return;  // already closing: OnPollClosed removes the hook
    box->self->polling_ = false;
    box->self->ClosePoll();
  }

  void CloseAll() {
    ClosePoll();
    if (fd_ < 0) return;
    ::close(fd_);
    fd_ = -1;
    // Unlink our socket file, not one a newer socket bound at the same path since.
    struct stat st;
    if (lstat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == dev_ && st.st_ino == ino_) unlink(path_.c_str());
  }

  struct PollBox {
    uv_poll_t handle;
    UnixDgram* self;  // nullptr once closing
    napi_async_cleanup_hook_handle hook;
  };

  int fd_ = -1;
  std::string path_, peer_path_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  sockaddr_un peer_ = {};
  socklen_t peer_len_ = 0;
  PollBox* poll_ = nullptr;
  bool polling_ = false;
  Napi::FunctionReference on_messages_;
  std::unique_ptr<Napi::AsyncContext> async_;
  Napi::Reference<Napi::Buffer<uint8_t>> slab_;
  uint8_t* slab_data_ = nullptr;
  size_t slab_off_ = 0;  // bytes below belong to JS
  double stats_[STAT_COUNT] = {};
};

}  // namespace

namespace tapswitch {
void InitUnixDgram(Napi::Env env, Napi::Object exports) { exports.Set("UnixDgram", UnixDgram::Init(env)); }
}  // namespace tapswitch
