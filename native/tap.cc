// tapswitch native TAP binding: the typed contract is native/index.d.ts.
//
// Design
// - The read side is poll_reader.h's: a non-blocking fd watched by uv_poll on
//   Node's own loop (fs.read would park a threadpool thread per TAP and hang
//   shutdown, nodejs/node#24048), read(2) until EAGAIN or a burst bound, and
//   the whole burst handed to JS in ONE call as [u32 BE length][frame] records
//   in a JS-owned append-only slab: the same batch format the switch speaks,
//   so JS forwards the range without copying or re-framing. This file says
//   what one read is (ReadRecord) and everything else a TAP needs.
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

#include "busy_poll.h"
#include "poll_reader.h"
#include "records.h"
#include "sys_error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <string>

// The other classes and functions of the addon, each in its own file.
namespace tapswitch {
void InitUnixDgram(Napi::Env env, Napi::Object exports);  // native/unixdgram.cc
void InitFastPath(Napi::Env env, Napi::Object exports);   // native/fastpath.cc
void InitPeer(Napi::Env env, Napi::Object exports);       // native/peer.cc
void InitProcess(Napi::Env env, Napi::Object exports);    // native/process.cc
}  // namespace tapswitch

namespace {

using namespace tapswitch;

constexpr const char* kTunPath = "/dev/net/tun";
// Largest IFF_TAP frame (batch.h's kMaxFrame), virtio-net header not included.
constexpr size_t kMaxRead = kMaxFrame;
constexpr uint32_t kMaxBurstBytesLimit = 64u << 20;
// The header's size (batch.h's kVnetHdrLen) is TUNSETVNETHDRSZ's default, which
// we set explicitly because a persistent TAP keeps whatever its last user chose.
constexpr uint8_t kVnetNeedsCsum = 1;
// TCP segmentation and checksums only: UFO/USO are never offered, so the
// switch never meets a UDP GSO frame it would have to segment.
constexpr unsigned kOffloadAllowed = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
const uint8_t kZeroVnetHdr[kVnetHdrLen] = {};

const char* HintFor(int err, const std::string& syscall) {
  // open() fails with EACCES on the device node's mode (0600 root on most
  // systems); TUNSETIFF fails with EPERM without CAP_NET_ADMIN.
  if (syscall == "open" && err == EACCES) return "needs root or CAP_NET_ADMIN, or read/write access to /dev/net/tun";
  if (err == EPERM || err == EACCES) return "needs CAP_NET_ADMIN";
  if (syscall == "open" && (err == ENOENT || err == ENODEV)) return "load the tun module: modprobe tun";
  if (syscall == "ioctl(TUNSETIFF)" && err == EBUSY) return "the interface exists and is in use by another process";
  if (syscall == "ioctl(TUNSETIFF)" && err == EINVAL)
    return "invalid name, or the name belongs to an interface that is not a TAP";
  if (syscall == "ioctl(TUNSETOFFLOAD)" && err == EINVAL)
    return "this kernel's TAP lacks these offloads: run without them (tap-agent --offload off)";
  if (syscall == "ioctl(TUNSETVNETHDRSZ)" || syscall == "ioctl(TUNSETVNETLE)")
    return "this kernel cannot use virtio-net headers on a TAP: run without offloads (tap-agent --offload off)";
  return "";
}

// Throws a SystemError-shaped Error (sys_error.h) with this class's hints.
void ThrowSys(Napi::Env env, int err, const std::string& syscall, const std::string& subject,
              const char* path = nullptr, const char* hint = nullptr) {
  ThrowSystemError(env, err, syscall, subject, path, hint != nullptr ? hint : HintFor(err, syscall));
}

// Bad arguments are programmer errors: TypeError/RangeError, never a crash.
void ThrowType(Napi::Env env, const std::string& msg) { Napi::TypeError::New(env, msg).ThrowAsJavaScriptException(); }
void ThrowRange(Napi::Env env, const std::string& msg) { Napi::RangeError::New(env, msg).ThrowAsJavaScriptException(); }

// Reads a non-negative integer argument <= max; throws TypeError/RangeError.
bool ArgUint(const Napi::CallbackInfo& info, size_t i, const char* what, double max, double* out) {
  Napi::Env env = info.Env();
  if (!info[i].IsNumber()) return ThrowType(env, std::string(what) + " must be a number"), false;
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= max) || v != static_cast<double>(static_cast<uint64_t>(v)))
    return ThrowRange(env, std::string(what) + " is out of range"), false;
  *out = v;
  return true;
}

// Opens /dev/net/tun and an AF_INET socket for the interface ioctls, both
// inside the network namespace `netns` (a file such as /run/netns/NAME): a
// TAP is created in the namespace of the tun file's socket, which is the
// opener's, and SIOCSIF* by name act in the namespace of the socket they are
// made on. This thread enters the namespace for the two calls only (setns
// moves the calling thread alone; Node's other threads never see it) and
// comes back before returning; not coming back is not survivable, so abort.
// Returns false with a pending exception.
bool OpenInNetns(Napi::Env env, const std::string& netns, int* tun, int* ctl) {
  int target = open(netns.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int err = errno;
    return ThrowSys(env, err, "open", netns, netns.c_str(),
                    err == ENOENT ? "no such network namespace: create it with ip netns add" : nullptr),
           false;
  }
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) {
    int err = errno;
    ::close(target);
    return ThrowSys(env, err, "open", "/proc/thread-self/ns/net", "/proc/thread-self/ns/net"), false;
  }
  if (setns(target, CLONE_NEWNET) < 0) {
    int err = errno;
    ::close(target);
    ::close(self);
    return ThrowSys(env, err, "setns", netns, netns.c_str(),
                    err == EINVAL  ? "not a network namespace"
                    : err == EPERM ? "needs CAP_SYS_ADMIN (root)"
                                   : nullptr),
           false;
  }
  *tun = open(kTunPath, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  int tunErr = errno;
  *ctl = *tun < 0 ? -1 : socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int ctlErr = errno;
  if (setns(self, CLONE_NEWNET) < 0) abort();
  ::close(target);
  ::close(self);
  if (*tun < 0) return ThrowSys(env, tunErr, "open", kTunPath, kTunPath), false;
  if (*ctl < 0) {
    ::close(*tun);
    *tun = -1;
    return ThrowSys(env, ctlErr, "socket", netns), false;
  }
  return true;
}

// Returns the attached fd and the kernel's name for it, or -1 with a pending
// exception. With `netns`, the TAP is made (or found) in that namespace and
// *ctl is a socket there for the ioctls by name; else *ctl stays -1.
// With `attach`, only an existing persistent TAP will do: TUNSETIFF cannot
// say "attach only", so one it made anew (not persistent) is closed at once,
// which deletes it, and the error is ENODEV.
int OpenTap(Napi::Env env, const std::string& want, bool vnet, const std::string& netns, bool attach, std::string* name,
            int* ctl) {
  std::string shown = want.empty() ? "tap%d" : want;
  *ctl = -1;
  // Checked here because the kernel would silently truncate (or we would
  // overflow ifr_name); reported as the EINVAL TUNSETIFF would give.
  if (want.size() >= IFNAMSIZ || want.find('\0') != std::string::npos)
    return ThrowSys(env, EINVAL, "ioctl(TUNSETIFF)", shown, nullptr,
                    "interface names are at most 15 bytes, without NUL"),
           -1;
  int fd = -1;
  if (!netns.empty()) {
    if (!OpenInNetns(env, netns, &fd, ctl)) return -1;
  } else {
    fd = open(kTunPath, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;  // read before building std::string arguments
      return ThrowSys(env, err, "open", kTunPath, kTunPath), -1;
    }
  }
  auto fail = [&](int err, const char* syscall, const std::string& subject, const char* hint = nullptr) {
    ::close(fd);
    if (*ctl >= 0) ::close(*ctl);
    *ctl = -1;
    ThrowSys(env, err, syscall, subject, nullptr, hint);
    return -1;
  };
  struct ifreq ifr = {};
  if (attach) {
    // The usual typo fails here, before TUNSETIFF could make a TAP of it even for a moment.
    memcpy(ifr.ifr_name, want.data(), want.size());
    bool exists = *ctl >= 0 ? ioctl(*ctl, SIOCGIFINDEX, &ifr) == 0 : if_nametoindex(want.c_str()) != 0;
    if (!exists) return fail(ENODEV, "ioctl(TUNSETIFF)", shown, "no persistent TAP of that name to attach to");
    ifr = {};
  }
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, want.data(), want.size());
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    return fail(err, "ioctl(TUNSETIFF)", shown);
  }
  name->assign(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
  if (attach) {
    struct ifreq got = {};
    if (ioctl(fd, TUNGETIFF, &got) < 0) {
      int err = errno;
      return fail(err, "ioctl(TUNGETIFF)", *name);
    }
    if ((got.ifr_flags & IFF_PERSIST) == 0)
      return fail(ENODEV, "ioctl(TUNSETIFF)", *name, "no persistent TAP of that name to attach to");
  }
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
      return fail(err, failed, *name);
    }
  }
  return fd;
}

class Tap : public Napi::ObjectWrap<Tap>, PollReader::Source {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(
        env, "Tap",
        {
            InstanceAccessor<&Tap::GetName>("name"),        InstanceAccessor<&Tap::GetFd>("fd"),
            InstanceAccessor<&Tap::GetIfindex>("ifindex"),  InstanceAccessor<&Tap::GetVnetHdr>("vnetHdr"),
            InstanceAccessor<&Tap::GetOffload>("offload"),  InstanceAccessor<&Tap::GetVnetRecords>("vnetRecords"),
            InstanceMethod<&Tap::Start>("start"),           InstanceMethod<&Tap::Stop>("stop"),
            InstanceMethod<&Tap::Write>("write"),           InstanceMethod<&Tap::WriteBatch>("writeBatch"),
            InstanceMethod<&Tap::SetMtu>("setMtu"),         InstanceMethod<&Tap::SetUp>("setUp"),
            InstanceMethod<&Tap::SetCarrier>("setCarrier"), InstanceMethod<&Tap::SetMac>("setMac"),
            InstanceMethod<&Tap::GetMac>("getMac"),         InstanceMethod<&Tap::SetIPv4>("setIPv4"),
            InstanceMethod<&Tap::SetOffload>("setOffload"), InstanceMethod<&Tap::SetVnetRecords>("setVnetRecords"),
            InstanceMethod<&Tap::Stats>("stats"),           InstanceMethod<&Tap::Close>("close"),
        });
  }

  explicit Tap(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<Tap>(info), reader_(this, this, stats_, "tapswitch:Tap") {
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
    std::string netns;
    bool attach = false;
    if (!info[2].IsUndefined()) {
      if (!info[2].IsObject()) {
        ThrowType(env, "options must be an object");
        return;
      }
      Napi::Object o = info[2].As<Napi::Object>();
      Napi::Value ns = o.Get("netns"), at = o.Get("attach");
      if (!ns.IsUndefined() && (!ns.IsString() || ns.As<Napi::String>().Utf8Value().empty())) {
        ThrowType(env, "options.netns must be a non-empty path");
        return;
      }
      if (!at.IsUndefined() && !at.IsBoolean()) {
        ThrowType(env, "options.attach must be a boolean");
        return;
      }
      if (ns.IsString()) netns = ns.As<Napi::String>().Utf8Value();
      attach = at.IsBoolean() && at.As<Napi::Boolean>().Value();
    }
    fd_ = OpenTap(env, info[0].As<Napi::String>().Utf8Value(), vnet_hdr_, netns, attach, &name_, &ctl_);
    if (fd_ < 0) return;  // exception pending; ObjectWrap deletes us
    if (ctl_ < 0) {
      ifindex_ = if_nametoindex(name_.c_str());
    } else {
      struct ifreq ifr = Ifr();
      ifindex_ = ioctl(ctl_, SIOCGIFINDEX, &ifr) == 0 ? static_cast<unsigned>(ifr.ifr_ifindex) : 0;
    }
  }

  // Runs when JS dropped the object without close() (a polling Tap holds a
  // strong self-reference, so this means stopped or never started), or at env
  // teardown. Must not call into JS.
  ~Tap() override {
    reader_.CloseHandle();  // before the fd it polls
    CloseFd();
  }

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
    if (reader_.polling()) return ThrowSys(env, EALREADY, "uv_poll_start", name_, nullptr, "call stop() first");
    const char* syscall = nullptr;
    int r = reader_.Start(env, fd_, info[0].As<Napi::Function>(), static_cast<uint32_t>(frames),
                          static_cast<uint32_t>(bytes), kVnetHdrLen + kMaxRead, &syscall);
    if (r < 0) ThrowSys(env, -r, syscall, name_);
  }

  void Stop(const Napi::CallbackInfo&) { reader_.Stop(); }

  // One read(2) into a record's payload. Reads dropped here (short or
  // offloaded frames) do not count toward the burst bound: we just read again.
  ssize_t ReadRecord(uint8_t* dst) override {
    // Header bytes a record keeps (counted out of RX_BYTES), and those readv drops.
    const size_t kept = vnet_records_ ? kVnetHdrLen : 0;
    const bool strip = vnet_hdr_ && !vnet_records_;
    // What this read may return at most; only a length checked against it
    // becomes a record, so the slab's end bounds every write.
    const size_t asked = strip ? kVnetHdrLen + kMaxRead : kMaxRead + kept;
    uint8_t scratch[kVnetHdrLen];
    for (;;) {
      ssize_t n;
      if (strip) {
        struct iovec iov[2] = {{scratch, kVnetHdrLen}, {dst, kMaxRead}};
        n = readv(fd_, iov, 2);
      } else {
        n = read(fd_, dst, asked);
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) stats_[RX_ERRORS]++;
        return PollReader::kEnd;  // on a hard error: report what we have; never spin on it
      }
      if (n == 0) return PollReader::kEnd;
      // read(2) never returns more than asked, but a length we did not check
      // would be trusted as a record and move the slab offset past its end
      // (issue 12, finding 16). A nonsense length is a broken fd or a broken
      // interposer: count it and end the burst, never spin on it.
      if (static_cast<size_t>(n) > asked) {
        stats_[RX_ERRORS]++;
        return PollReader::kEnd;
      }
      if (vnet_hdr_ && static_cast<size_t>(n) < kVnetHdrLen + 1) {
        stats_[RX_ERRORS]++;
        continue;
      }
      if (strip) {
        // Queued while offloads were on: a plain record must not carry it.
        if (scratch[1] != 0 || (scratch[0] & kVnetNeedsCsum) != 0) {
          stats_[RX_ERRORS]++;
          continue;
        }
        n -= kVnetHdrLen;
      }
      return n;
    }
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
      do n = ::writev(fd_, iov, 2);
      while (n < 0 && errno == EINTR);
    } else {
      do n = ::write(fd_, p, len);
      while (n < 0 && errno == EINTR);
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
    const uint8_t* p;
    size_t start, end;
    if (!BatchArgs(info, &p, &start, &end)) return env.Undefined();
    const uint32_t written = ForEachRecord(
        p, start, end, stats_, [this](const uint8_t* frame, size_t len) { return WriteFrame(frame, len) >= 0; });
    return Napi::Number::New(env, written);
  }

  // Slow-path ioctl by name: on the socket made in the TAP's namespace when it
  // was opened in one (the name means that namespace's interface), else on a
  // throwaway AF_INET socket of ours; throws on failure.
  bool IfIoctl(Napi::Env env, unsigned long req, const char* syscall, struct ifreq* ifr) {
    if (fd_ < 0) return ThrowSys(env, EBADF, syscall, name_, nullptr, "the Tap is closed"), false;
    if (ctl_ >= 0) {
      if (ioctl(ctl_, req, ifr) < 0) return ThrowSys(env, errno, syscall, name_), false;
      return true;
    }
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
    if (info[0].As<Napi::Boolean>().Value())
      ifr.ifr_flags |= IFF_UP;
    else
      ifr.ifr_flags &= ~IFF_UP;
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
    if (!info[0].IsString() || inet_pton(AF_INET, info[0].As<Napi::String>().Utf8Value().c_str(), &addr) != 1)
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
    reader_.set_record_header(on ? kVnetHdrLen : 0);
  }

  void Stats(const Napi::CallbackInfo& info) { CopyStats(info, stats_); }

  void Close(const Napi::CallbackInfo&) {
    reader_.Close();
    CloseFd();
  }

  void CloseFd() {
    if (fd_ >= 0) {
      ::close(fd_);  // a non-persistent TAP vanishes with its last fd
      fd_ = -1;
    }
    if (ctl_ >= 0) {
      ::close(ctl_);
      ctl_ = -1;
    }
  }

  int fd_ = -1;
  int ctl_ = -1;               // a socket in the TAP's namespace (options.netns), for the ioctls by name
  bool vnet_hdr_ = false;      // opened with IFF_VNET_HDR: every read/write on the fd has a header
  bool vnet_records_ = false;  // records keep that header (offload negotiated with the switch)
  unsigned offload_ = 0;       // the last TUNSETOFFLOAD flags that took
  std::string name_;
  unsigned ifindex_ = 0;
  double stats_[STAT_COUNT] = {};
  PollReader reader_;  // last: its destructor may still close the handle
};

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("Tap", Tap::Init(env));
  tapswitch::InitUnixDgram(env, exports);
  tapswitch::busy_poll::Init(env, exports);
  tapswitch::InitFastPath(env, exports);
  tapswitch::InitPeer(env, exports);
  tapswitch::InitProcess(env, exports);
  const char* names[STAT_COUNT] = {"STAT_RX_FRAMES",  "STAT_RX_BYTES",  "STAT_TX_FRAMES",    "STAT_TX_BYTES",
                                   "STAT_TX_DROPPED", "STAT_TX_ERRORS", "STAT_TX_MALFORMED", "STAT_RX_ERRORS"};
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
