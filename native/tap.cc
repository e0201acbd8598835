// tapswitch native TAP binding: the typed contract is native/index.d.ts.
//
// Design
// - Readiness comes from a uv_poll_t on Node's own loop (napi_get_uv_event_loop,
//   so it also works inside a worker), not from fs.read()/fs.createReadStream.
//   fs.read on a character device parks a threadpool thread in read(2); with
//   several TAPs that starves the 4-thread pool (dns, zlib, fs all queue behind
//   it), and closing the fd does not wake a blocked read, so shutdown hangs
//   (nodejs/node#24048). A non-blocking fd plus uv_poll costs no thread at all.
// - On each readable event we read(2) until EAGAIN or a burst bound and hand
//   the whole burst to JS in ONE call, as [u32 BE length][frame] records: the
//   same batch format the switch speaks, so JS can forward the range without
//   copying or re-framing, and the JS<->C++ crossing is per burst, not per frame.
// - Frames land in a "slab": a 1 MiB+ Buffer owned by JS (GC'd like any other
//   Buffer). We only ever append to it; once the tail is too short we allocate
//   a fresh slab and drop our reference. It is deliberately not a ring: JS may
//   still hold views of old bursts (e.g. queued in a ws send), and a ring would
//   overwrite them. A retired slab lives exactly as long as its last view.
// - Lifetime: while polling, the JS object holds a strong self-reference, as
//   the poll handle points at it. The uv_poll_t lives in a small heap box that
//   only its uv_close callback frees, so close() is safe from inside onFrames.
//   An async env-cleanup hook closes the handle when a worker's env goes away,
//   before Node unloads this addon (else libuv would call unmapped code).
// - Offloads (optional): opened with IFF_VNET_HDR, every read(2) and write(2)
//   on the fd starts with a 10-byte struct virtio_net_hdr, and TUNSETOFFLOAD
//   lets the kernel hand over 64 KiB TCP frames (GSO) and partial checksums.
//   Whether a record in the slab keeps that header is a per-Tap switch
//   (setVnetRecords), because it depends on the switch at the other end of
//   the uplink, which may change at run time. With it, read(2) lands the
//   header and frame straight after the record length and writeBatch writes a
//   record's payload as it is: no copy either way. Without it, readv(2) puts
//   the header in a scratch buffer and writev(2) prepends a zero one, so JS
//   sees plain frames; offloads are then off (TUNSETOFFLOAD 0), so the kernel
//   has no GSO frame or partial checksum to hand over. Frames it queued while
//   they were on are dropped (counted as RX_ERRORS): a plain record must
//   never carry one.
// - C++ exceptions are disabled: every throw is "set a pending JS exception and
//   return". Syscall failures never assert.

#include <napi.h>
#include <uv.h>

#include "sys_error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>

namespace tapswitch { void InitUnixDgram(Napi::Env env, Napi::Object exports); }  // native/unixdgram.cc

namespace {

constexpr const char* kTunPath = "/dev/net/tun";
// Largest IFF_TAP frame: 64 KiB (MTU ceiling) + Ethernet/VLAN header headroom.
constexpr size_t kMaxRead = 65536 + 64;
constexpr size_t kMinSlab = 1 << 20;
constexpr uint32_t kMaxBurstBytesLimit = 64u << 20;
// struct virtio_net_hdr (legacy layout): TUNSETVNETHDRSZ's default, which we set
// explicitly because a persistent TAP keeps whatever its last user chose.
constexpr size_t kVnetHdrLen = 10;
constexpr uint8_t kVnetNeedsCsum = 1;
// TCP segmentation and checksums only: UFO/USO are never offered, so the
// switch never meets a UDP GSO frame it would have to segment.
constexpr unsigned kOffloadAllowed = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
const uint8_t kZeroVnetHdr[kVnetHdrLen] = {};

using namespace tapswitch;

const char* HintFor(int err, const std::string& syscall) {
  // open() fails with EACCES on the device node's mode (0600 root on most
  // systems); TUNSETIFF fails with EPERM without CAP_NET_ADMIN.
  if (syscall == "open" && err == EACCES)
    return "needs root or CAP_NET_ADMIN, or read/write access to /dev/net/tun";
  if (err == EPERM || err == EACCES) return "needs CAP_NET_ADMIN";
  if (syscall == "open" && (err == ENOENT || err == ENODEV))
    return "load the tun module: modprobe tun";
  if (syscall == "ioctl(TUNSETIFF)" && err == EBUSY)
    return "the interface exists and is in use by another process";
  if (syscall == "ioctl(TUNSETIFF)" && err == EINVAL)
    return "invalid name, or the name belongs to an interface that is not a TAP";
  if (syscall == "ioctl(TUNSETOFFLOAD)" && err == EINVAL)
    return "this kernel's TAP lacks these offloads: run without them (tap-agent --offload off)";
  if (syscall == "ioctl(TUNSETVNETHDRSZ)" || syscall == "ioctl(TUNSETVNETLE)")
    return "this kernel cannot use virtio-net headers on a TAP: run without offloads (tap-agent --offload off)";
  return "";
}

// Throws a SystemError-shaped Error (sys_error.h) with this class's hints.
void ThrowSys(Napi::Env env, int err, const std::string& syscall,
              const std::string& subject, const char* path = nullptr,
              const char* hint = nullptr) {
  ThrowSystemError(env, err, syscall, subject, path, hint != nullptr ? hint : HintFor(err, syscall));
}

// Bad arguments are programmer errors: TypeError/RangeError, never a crash.
void ThrowType(Napi::Env env, const std::string& msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
}
void ThrowRange(Napi::Env env, const std::string& msg) {
  Napi::RangeError::New(env, msg).ThrowAsJavaScriptException();
}

// Reads a non-negative integer argument <= max; throws TypeError/RangeError.
bool ArgUint(const Napi::CallbackInfo& info, size_t i, const char* what,
             double max, double* out) {
  Napi::Env env = info.Env();
  if (!info[i].IsNumber()) return ThrowType(env, std::string(what) + " must be a number"), false;
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= max) || v != static_cast<double>(static_cast<uint64_t>(v)))
    return ThrowRange(env, std::string(what) + " is out of range"), false;
  *out = v;
  return true;
}

void WriteBE32(uint8_t* p, uint32_t v) {
  p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

// Returns the attached fd and the kernel's name for it, or -1 with a pending exception.
int OpenTap(Napi::Env env, const std::string& want, bool vnet, std::string* name) {
  std::string shown = want.empty() ? "tap%d" : want;
  // Checked here because the kernel would silently truncate (or we would
  // overflow ifr_name); reported as the EINVAL TUNSETIFF would give.
  if (want.size() >= IFNAMSIZ || want.find('\0') != std::string::npos)
    return ThrowSys(env, EINVAL, "ioctl(TUNSETIFF)", shown, nullptr,
                    "interface names are at most 15 bytes, without NUL"), -1;
  int fd = open(kTunPath, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;  // read before building std::string arguments
    return ThrowSys(env, err, "open", kTunPath, kTunPath), -1;
  }
  struct ifreq ifr = {};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, want.data(), want.size());
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    ::close(fd);
    return ThrowSys(env, err, "ioctl(TUNSETIFF)", shown), -1;
  }
  name->assign(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
  if (vnet) {
    // A persistent TAP keeps its header size, byte order and offloads from its
    // last user: start from ours (10 bytes, little-endian, nothing offloaded).
    int sz = kVnetHdrLen, le = 1;
    const char* failed = nullptr;
    if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) failed = "ioctl(TUNSETVNETHDRSZ)";
    // The protocol's fields are little-endian. That is the legacy default on a
    // little-endian host, where a kernel without this ioctl is then fine.
    if (failed == nullptr && ioctl(fd, TUNSETVNETLE, &le) < 0 && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
      failed = "ioctl(TUNSETVNETLE)";
    if (failed == nullptr && ioctl(fd, TUNSETOFFLOAD, 0ul) < 0) failed = "ioctl(TUNSETOFFLOAD)";
    if (failed != nullptr) {
      int err = errno;
      ::close(fd);
      return ThrowSys(env, err, failed, *name), -1;
    }
  }
  return fd;
}

class Tap : public Napi::ObjectWrap<Tap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Tap", {
      InstanceAccessor<&Tap::GetName>("name"),
      InstanceAccessor<&Tap::GetFd>("fd"),
      InstanceAccessor<&Tap::GetIfindex>("ifindex"),
      InstanceAccessor<&Tap::GetVnetHdr>("vnetHdr"),
      InstanceAccessor<&Tap::GetOffload>("offload"),
      InstanceAccessor<&Tap::GetVnetRecords>("vnetRecords"),
      InstanceMethod<&Tap::Start>("start"),
      InstanceMethod<&Tap::Stop>("stop"),
      InstanceMethod<&Tap::Write>("write"),
      InstanceMethod<&Tap::WriteBatch>("writeBatch"),
      InstanceMethod<&Tap::SetMtu>("setMtu"),
      InstanceMethod<&Tap::SetUp>("setUp"),
      InstanceMethod<&Tap::SetCarrier>("setCarrier"),
      InstanceMethod<&Tap::SetMac>("setMac"),
      InstanceMethod<&Tap::GetMac>("getMac"),
      InstanceMethod<&Tap::SetIPv4>("setIPv4"),
      InstanceMethod<&Tap::SetOffload>("setOffload"),
      InstanceMethod<&Tap::SetVnetRecords>("setVnetRecords"),
      InstanceMethod<&Tap::Stats>("stats"),
      InstanceMethod<&Tap::Close>("close"),
    });
  }

  explicit Tap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Tap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) {
      ThrowType(env, "name must be a string");
      return;
    }
    if (!info[1].IsUndefined() && !info[1].IsBoolean()) {
      ThrowType(env, "vnetHdr must be a boolean");
      return;
    }
    vnet_hdr_ = info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
    fd_ = OpenTap(env, info[0].As<Napi::String>().Utf8Value(), vnet_hdr_, &name_);
    if (fd_ < 0) return;  // exception pending; ObjectWrap deletes us
    ifindex_ = if_nametoindex(name_.c_str());
    async_ = std::make_unique<Napi::AsyncContext>(env, "tapswitch:Tap", info.This().As<Napi::Object>());
  }

  // Runs when JS dropped the object without close() (a polling Tap holds a
  // strong self-reference, so this means stopped or never started), or at env
  // teardown. Must not call into JS.
  ~Tap() override { CloseHandleAndFd(); }

 private:
  Napi::Value GetName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }
  Napi::Value GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }
  Napi::Value GetIfindex(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), ifindex_); }
  Napi::Value GetVnetHdr(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), vnet_hdr_); }
  Napi::Value GetOffload(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), offload_); }
  Napi::Value GetVnetRecords(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), vnet_records_); }

  void Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    double frames, bytes;
    if (!info[0].IsFunction()) return ThrowType(env, "onFrames must be a function");
    if (!ArgUint(info, 1, "maxBurstFrames", 0xffffffffu, &frames)) return;
    if (!ArgUint(info, 2, "maxBurstBytes", kMaxBurstBytesLimit, &bytes)) return;
    if (frames < 1 || bytes < 1) return ThrowRange(env, "burst bounds must be >= 1");
    if (fd_ < 0) return ThrowSys(env, EBADF, "uv_poll_start", name_, nullptr, "the Tap is closed");
    if (polling_) return ThrowSys(env, EALREADY, "uv_poll_start", name_, nullptr, "call stop() first");
    if (poll_ == nullptr) {
      uv_loop_t* loop = nullptr;
      if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
        Napi::Error::New(env, "napi_get_uv_event_loop failed").ThrowAsJavaScriptException();
        return;
      }
      auto* box = new PollBox{};
      int r = uv_poll_init(loop, &box->handle, fd_);
      if (r < 0) {
        delete box;  // never registered with the loop: no uv_close needed
        return ThrowSys(env, -r, "uv_poll_init", name_);
      }
      box->tap = this;
      box->handle.data = box;
      poll_ = box;
      // Node waits for this hook's removal (in OnPollClosed) before unloading us.
      if (napi_add_async_cleanup_hook(env, OnEnvTeardown, box, &box->hook) != napi_ok) {
        ClosePoll();
        Napi::Error::New(env, "napi_add_async_cleanup_hook failed").ThrowAsJavaScriptException();
        return;
      }
    }
    max_frames_ = static_cast<uint32_t>(frames);
    max_bytes_ = static_cast<uint32_t>(bytes);
    if (slab_.IsEmpty() || slab_len_ - slab_off_ < SlabReserve()) NewSlab(env);
    int r = uv_poll_start(&poll_->handle, UV_READABLE, OnPoll);
    if (r < 0) return ThrowSys(env, -r, "uv_poll_start", name_);
    on_frames_ = Napi::Persistent(info[0].As<Napi::Function>());
    polling_ = true;
    Ref();  // the poll handle points at us: GC must not collect us meanwhile
  }

  void Stop(const Napi::CallbackInfo&) { StopPolling(); }

  void StopPolling() {
    if (!polling_) return;
    polling_ = false;
    if (poll_) uv_poll_stop(&poll_->handle);
    on_frames_.Reset();
    Unref();
  }

  // The tail must fit one more maximal read after a whole burst, so a burst is
  // only ever cut short by its own bounds, not by the slab.
  size_t SlabReserve() const { return 4 + kVnetHdrLen + kMaxRead + max_bytes_; }

  void NewSlab(Napi::Env env) {
    size_t len = std::max(kMinSlab, 2 * SlabReserve());
    Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::New(env, len);
    slab_ = Napi::Persistent(buf);  // drops our ref to the old slab; views keep it alive
    slab_data_ = buf.Data();
    slab_len_ = len;
    slab_off_ = 0;
  }

  static void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
    static_cast<PollBox*>(handle->data)->tap->OnReadable(status);
  }

  void OnReadable(int status) {
    if (fd_ < 0 || !polling_) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (status < 0) {
      // libuv saw POLLERR (e.g. the device was deleted) and already stopped
      // the watcher; keep our state in step instead of silently hanging.
      stats_[RX_ERRORS]++;
      StopPolling();
      return;
    }
    const size_t start = slab_off_;
    size_t off = start;
    uint32_t count = 0;
    size_t bytes = 0;
    // Header bytes a record keeps (counted out of RX_BYTES), and those readv drops.
    const size_t kept = vnet_records_ ? kVnetHdrLen : 0;
    const bool strip = vnet_hdr_ && !vnet_records_;
    uint8_t scratch[kVnetHdrLen];
    while (count < max_frames_ && bytes < max_bytes_ && slab_len_ - off >= 4 + kVnetHdrLen + kMaxRead) {
      ssize_t n;
      // What this read may return at most; `off` only ever advances by a
      // length checked against it, so the slab's end bounds every write.
      const size_t asked = strip ? kVnetHdrLen + kMaxRead : kMaxRead + kept;
      if (strip) {
        struct iovec iov[2] = {{scratch, kVnetHdrLen}, {slab_data_ + off + 4, kMaxRead}};
        n = readv(fd_, iov, 2);
      } else {
        n = read(fd_, slab_data_ + off + 4, asked);
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) stats_[RX_ERRORS]++;
        break;  // on a hard error: report what we have; never spin on it
      }
      if (n == 0) break;
      // read(2) never returns more than asked, but a length we did not check
      // would be trusted as a record and move `off` past the slab (issue 12,
      // finding 16). A nonsense length is a broken fd or a broken interposer:
      // count it and end the burst, never spin on it.
      if (static_cast<size_t>(n) > asked) { stats_[RX_ERRORS]++; break; }
      if (vnet_hdr_ && static_cast<size_t>(n) < kVnetHdrLen + 1) { stats_[RX_ERRORS]++; continue; }
      if (strip) {
        // Queued while offloads were on: a plain record must not carry it.
        if (scratch[1] != 0 || (scratch[0] & kVnetNeedsCsum) != 0) { stats_[RX_ERRORS]++; continue; }
        n -= kVnetHdrLen;
      }
      WriteBE32(slab_data_ + off, static_cast<uint32_t>(n));
      off += 4 + n;
      bytes += 4 + n;
      count++;
      stats_[RX_FRAMES]++;
      stats_[RX_BYTES] += n - kept;
    }
    slab_off_ = off;
    if (count > 0) {
      Napi::Object self = Value();
      Napi::Buffer<uint8_t> slab = slab_.Value();
      // Copy the callback: onFrames may stop()/close() and Reset on_frames_.
      Napi::Function fn = on_frames_.Value();
      // MakeCallback (not Call) so process.nextTick and microtasks run when it
      // returns, exactly as after any other libuv-driven callback.
      fn.MakeCallback(self, {slab, Napi::Number::New(env, static_cast<double>(start)),
                             Napi::Number::New(env, static_cast<double>(off)),
                             Napi::Number::New(env, count)}, *async_);
      if (env.IsExceptionPending()) {
        // We are not under any JS frame that could catch it: route it to
        // process 'uncaughtException' rather than swallow it.
        Napi::Error e = env.GetAndClearPendingException();
        napi_fatal_exception(env, e.Value());
      }
    }
    // onFrames may have closed us, or restarted us with another slab.
    if (fd_ >= 0 && !slab_.IsEmpty() && slab_len_ - slab_off_ < SlabReserve()) NewSlab(env);
  }

  // One write(2) of a record's payload (writev with a zero virtio-net header
  // when the TAP wants one and the record has none); returns the frame's
  // bytes or -errno and keeps the TX counters.
  ssize_t WriteFrame(const uint8_t* p, size_t len) {
    ssize_t n;
    const bool add = vnet_hdr_ && !vnet_records_;
    if (fd_ < 0) {
      n = -1;
      errno = EBADF;
    } else if (add) {
      struct iovec iov[2] = {{const_cast<uint8_t*>(kZeroVnetHdr), kVnetHdrLen}, {const_cast<uint8_t*>(p), len}};
      do n = ::writev(fd_, iov, 2); while (n < 0 && errno == EINTR);
    } else {
      do n = ::write(fd_, p, len); while (n < 0 && errno == EINTR);
    }
    if (n >= 0) {
      if (vnet_hdr_) n = n > static_cast<ssize_t>(kVnetHdrLen) ? n - kVnetHdrLen : 0;
      stats_[TX_FRAMES]++;
      stats_[TX_BYTES] += n;
      return n;
    }
    int err = errno;
    stats_[(err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) ? TX_DROPPED : TX_ERRORS]++;
    return -err;
  }

  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsBuffer()) return ThrowType(env, "frame must be a Buffer"), env.Undefined();
    auto frame = info[0].As<Napi::Buffer<uint8_t>>();
    return Napi::Number::New(env, static_cast<double>(WriteFrame(frame.Data(), frame.Length())));
  }

  Napi::Value WriteBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsBuffer()) return ThrowType(env, "buf must be a Buffer"), env.Undefined();
    auto buf = info[0].As<Napi::Buffer<uint8_t>>();
    double start, end;
    if (!ArgUint(info, 1, "start", static_cast<double>(buf.Length()), &start)) return env.Undefined();
    if (!ArgUint(info, 2, "end", static_cast<double>(buf.Length()), &end)) return env.Undefined();
    if (start > end) return ThrowRange(env, "start > end"), env.Undefined();
    const uint8_t* p = buf.Data();
    size_t off = static_cast<size_t>(start), stop = static_cast<size_t>(end);
    uint32_t written = 0;
    while (off < stop) {
      if (stop - off < 4 || ReadBE32(p + off) > stop - off - 4) {
        stats_[TX_MALFORMED]++;
        break;
      }
      uint32_t len = ReadBE32(p + off);
      if (WriteFrame(p + off + 4, len) >= 0) written++;
      off += 4 + size_t(len);
    }
    return Napi::Number::New(env, written);
  }

  // Slow-path ioctl on a throwaway AF_INET socket; throws on failure.
  bool IfIoctl(Napi::Env env, unsigned long req, const char* syscall, struct ifreq* ifr) {
    if (fd_ < 0) return ThrowSys(env, EBADF, syscall, name_, nullptr, "the Tap is closed"), false;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int r = s < 0 ? -1 : ioctl(s, req, ifr);
    int err = errno;
    if (s < 0) return ThrowSys(env, err, "socket", name_), false;
    ::close(s);
    if (r < 0) return ThrowSys(env, err, syscall, name_), false;
    return true;
  }

  struct ifreq Ifr() const {
    struct ifreq ifr = {};
    memcpy(ifr.ifr_name, name_.data(), std::min(name_.size(), size_t(IFNAMSIZ - 1)));
    return ifr;
  }

  void SetMtu(const Napi::CallbackInfo& info) {
    double mtu;
    if (!ArgUint(info, 0, "mtu", 65535, &mtu)) return;
    struct ifreq ifr = Ifr();
    ifr.ifr_mtu = static_cast<int>(mtu);
    IfIoctl(info.Env(), SIOCSIFMTU, "ioctl(SIOCSIFMTU)", &ifr);
  }

  void SetUp(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsBoolean()) return ThrowType(env, "up must be a boolean");
    struct ifreq ifr = Ifr();
    if (!IfIoctl(env, SIOCGIFFLAGS, "ioctl(SIOCGIFFLAGS)", &ifr)) return;
    if (info[0].As<Napi::Boolean>().Value()) ifr.ifr_flags |= IFF_UP;
    else ifr.ifr_flags &= ~IFF_UP;
    IfIoctl(env, SIOCSIFFLAGS, "ioctl(SIOCSIFFLAGS)", &ifr);
  }

  // TUNSETCARRIER (Linux >= 5.0) on the TAP's own fd: guests see link down
  // while the uplink is gone. Needs CAP_NET_ADMIN.
  void SetCarrier(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsBoolean()) return ThrowType(env, "carrier must be a boolean");
    if (fd_ < 0) return ThrowSys(env, EBADF, "ioctl(TUNSETCARRIER)", name_, nullptr, "the Tap is closed");
#ifdef TUNSETCARRIER
    int on = info[0].As<Napi::Boolean>().Value() ? 1 : 0;
    if (ioctl(fd_, TUNSETCARRIER, &on) < 0) ThrowSys(env, errno, "ioctl(TUNSETCARRIER)", name_);
#else
    ThrowSys(env, ENOTSUP, "ioctl(TUNSETCARRIER)", name_, nullptr, "needs Linux >= 5.0 headers");
#endif
  }

  void SetMac(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsBuffer() || info[0].As<Napi::Buffer<uint8_t>>().Length() != 6)
      return ThrowType(env, "mac must be a 6-byte Buffer");
    struct ifreq ifr = Ifr();
    ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
    memcpy(ifr.ifr_hwaddr.sa_data, info[0].As<Napi::Buffer<uint8_t>>().Data(), 6);
    IfIoctl(env, SIOCSIFHWADDR, "ioctl(SIOCSIFHWADDR)", &ifr);
  }

  Napi::Value GetMac(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    struct ifreq ifr = Ifr();
    if (!IfIoctl(env, SIOCGIFHWADDR, "ioctl(SIOCGIFHWADDR)", &ifr)) return env.Undefined();
    return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<uint8_t*>(ifr.ifr_hwaddr.sa_data), 6);
  }

  void SetIPv4(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    double prefix;
    struct in_addr addr;
    if (!info[0].IsString() ||
        inet_pton(AF_INET, info[0].As<Napi::String>().Utf8Value().c_str(), &addr) != 1)
      return ThrowType(env, "address must be a dotted-quad string");
    if (!ArgUint(info, 1, "prefixLength", 32, &prefix)) return;
    struct ifreq ifr = Ifr();
    auto* sin = reinterpret_cast<struct sockaddr_in*>(&ifr.ifr_addr);
    sin->sin_family = AF_INET;
    sin->sin_addr = addr;
    if (!IfIoctl(env, SIOCSIFADDR, "ioctl(SIOCSIFADDR)", &ifr)) return;
    sin = reinterpret_cast<struct sockaddr_in*>(&ifr.ifr_netmask);
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(prefix == 0 ? 0 : 0xffffffffu << (32 - static_cast<int>(prefix)));
    IfIoctl(env, SIOCSIFNETMASK, "ioctl(SIOCSIFNETMASK)", &ifr);
  }

  // TUNSETOFFLOAD: what the kernel may hand us (TUN_F_* bits, 0 = plain
  // frames only). Changeable at any time; needs IFF_VNET_HDR for anything but 0.
  void SetOffload(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    double v;
    if (!ArgUint(info, 0, "flags", 0xffffffffu, &v)) return;
    unsigned flags = static_cast<unsigned>(v);
    if ((flags & ~kOffloadAllowed) != 0)
      return ThrowRange(env, "flags: only TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 and TUN_F_TSO_ECN");
    if (fd_ < 0) return ThrowSys(env, EBADF, "ioctl(TUNSETOFFLOAD)", name_, nullptr, "the Tap is closed");
    // Without headers the kernel would hand over GSO frames we could not tell apart.
    if (flags != 0 && !vnet_hdr_)
      return ThrowSys(env, EINVAL, "ioctl(TUNSETOFFLOAD)", name_, nullptr,
                      "offloads need virtio-net headers: open the Tap with vnetHdr (IFF_VNET_HDR)");
    if (ioctl(fd_, TUNSETOFFLOAD, static_cast<unsigned long>(flags)) < 0)
      return ThrowSys(env, errno, "ioctl(TUNSETOFFLOAD)", name_);
    offload_ = flags;
  }

  // Whether records (read bursts, writeBatch input) carry the virtio-net header.
  void SetVnetRecords(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsBoolean()) return ThrowType(env, "on must be a boolean");
    bool on = info[0].As<Napi::Boolean>().Value();
    if (on && !vnet_hdr_)
      return ThrowSys(env, ENOTSUP, "ioctl(TUNSETIFF)", name_, nullptr,
                      "opened without IFF_VNET_HDR: open the Tap with vnetHdr to carry virtio-net headers");
    vnet_records_ = on;
  }

  void Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      return ThrowType(env, "out must be a Float64Array");
    auto out = info[0].As<Napi::Float64Array>();
    if (out.ElementLength() < STAT_COUNT) return ThrowRange(env, "out is shorter than STAT_COUNT");
    std::copy(stats_, stats_ + STAT_COUNT, out.Data());
  }

  void Close(const Napi::CallbackInfo&) {
    StopPolling();
    CloseHandleAndFd();
    slab_.Reset();
  }

  // libuv owns the handle until its close callback runs: free it there, and
  // only there. The box outlives us, so it must forget us now.
  void ClosePoll() {
    if (!poll_) return;
    PollBox* box = poll_;
    poll_ = nullptr;
    box->tap = nullptr;
    uv_poll_stop(&box->handle);
    uv_close(reinterpret_cast<uv_handle_t*>(&box->handle), OnPollClosed);
  }

  static void OnPollClosed(uv_handle_t* h) {
    auto* box = static_cast<PollBox*>(h->data);
    if (box->hook) napi_remove_async_cleanup_hook(box->hook);  // lets teardown go on
    delete box;
  }

  // Env teardown (worker exit): no JS allowed. The finalizer closes the fd later.
  static void OnEnvTeardown(napi_async_cleanup_hook_handle, void* arg) {
    auto* box = static_cast<PollBox*>(arg);
    if (box->tap == nullptr) return;  // already closing: OnPollClosed finishes the hook
    box->tap->polling_ = false;
    box->tap->ClosePoll();
  }

  void CloseHandleAndFd() {
    ClosePoll();
    if (fd_ >= 0) {
      ::close(fd_);  // a non-persistent TAP vanishes with its last fd
      fd_ = -1;
    }
  }

  struct PollBox {
    uv_poll_t handle;
    Tap* tap;  // nullptr once closing
    napi_async_cleanup_hook_handle hook;
  };

  int fd_ = -1;
  bool vnet_hdr_ = false;      // opened with IFF_VNET_HDR: every read/write on the fd has a header
  bool vnet_records_ = false;  // records keep that header (offload negotiated with the switch)
  unsigned offload_ = 0;       // the last TUNSETOFFLOAD flags that took
  std::string name_;
  unsigned ifindex_ = 0;
  PollBox* poll_ = nullptr;
  bool polling_ = false;
  uint32_t max_frames_ = 0, max_bytes_ = 0;
  Napi::FunctionReference on_frames_;
  std::unique_ptr<Napi::AsyncContext> async_;
  Napi::Reference<Napi::Buffer<uint8_t>> slab_;
  uint8_t* slab_data_ = nullptr;
  size_t slab_len_ = 0, slab_off_ = 0;  // bytes below slab_off_ belong to JS
  double stats_[STAT_COUNT] = {};
};

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("Tap", Tap::Init(env));
  tapswitch::InitUnixDgram(env, exports);
  const char* names[STAT_COUNT] = {"STAT_RX_FRAMES", "STAT_RX_BYTES", "STAT_TX_FRAMES",
                                   "STAT_TX_BYTES", "STAT_TX_DROPPED", "STAT_TX_ERRORS",
                                   "STAT_TX_MALFORMED", "STAT_RX_ERRORS"};
  for (int i = 0; i < STAT_COUNT; i++) exports.Set(names[i], Napi::Number::New(env, i));
  exports.Set("STAT_COUNT", Napi::Number::New(env, STAT_COUNT));
  exports.Set("MAX_READ", Napi::Number::New(env, static_cast<double>(kMaxRead)));
  exports.Set("VNET_HDR_LEN", Napi::Number::New(env, static_cast<double>(kVnetHdrLen)));
  exports.Set("TUN_F_CSUM", Napi::Number::New(env, TUN_F_CSUM));
  exports.Set("TUN_F_TSO4", Napi::Number::New(env, TUN_F_TSO4));
  exports.Set("TUN_F_TSO6", Napi::Number::New(env, TUN_F_TSO6));
  exports.Set("TUN_F_TSO_ECN", Napi::Number::New(env, TUN_F_TSO_ECN));
  exports.Set("OFFLOAD_TSO", Napi::Number::New(env, kOffloadAllowed));
  return exports;
}

}  // namespace

NODE_API_MODULE(tap, InitModule)
