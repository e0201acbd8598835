// The native fast path for switchd's own TAPs (issue 14; docs/LOCAL-TAPS.md):
// Open vSwitch's datapath flow cache with upcalls, in one thread per network.
//
// Why a thread: an idle ping through --tap paid Node's cold wake-up (libuv
// loop, N-API, V8 on cold caches) on every hop, ~110 µs here. A thread blocked
// in poll(2) on the TAP fds wakes into a few hundred bytes of C++ instead:
// read(2), one hash lookup, write(2). Nothing spins: poll() blocks, and an
// eventfd wakes it to stop or to take a new set of fds.
//
// - Flows are exact-match (ingress slot, dst MAC, src MAC) -> egress slot, and
//   ONLY JS installs them (io/fast-path.ts, after core/fastpath.ts's
//   mayShortcut said the slow path made exactly this decision with nothing
//   else to do). JS flushes them on any event that could change a decision and
//   revalidates them every tick; a hit only bumps counters.
// - A frame the table cannot answer (no flow, a VLAN tag, a group dst, a runt,
//   over the network's largest frame, a virtio-net header we do not pass as
//   it is) is a miss: copied into a bounded buffer (full = counted drop) and
//   handed to JS with uv_async_send; JS gives it to the switch exactly as if
//   the TAP's own reader had read it (same [u32 BE len][record] batches).
// - Both ends of a flow have the same record format (JS only pairs ports whose
//   virtio-net mode matches), so a hit is written as it was read.
// - The lock (mu_) guards the shared state only: the port slots, the flow
//   table, the miss queue and the counters. It is never held across a system
//   call. A burst takes it three times: to check its port and mark the burst
//   begun; after reading, to decide every frame and queue the misses; after
//   writing the hits, to publish the counters and mark the burst done. So JS
//   (install, flush, stats) never waits for a read or a write.
// - A flow flushed while a burst is in flight may still carry the frames that
//   burst decided under it: they were decided before the flush, as Open
//   vSwitch's datapath still executes the actions of a packet that matched a
//   flow the revalidator deletes meanwhile. Nothing decided after the flush
//   uses the flow.
// - A removed port's fd is never touched once removePort returns (JS closes
//   it right after, and the number may be reused at once): removePort marks
//   the slot free, so no later burst reads it or decides to write to it, then
//   waits for the burst in flight, if any, to finish (bursts_done_), which is
//   at most one bounded burst of non-blocking calls. Counters of a port
//   removed meanwhile are not published (JS folded them in before removing).
//   JS's own writes to a TAP fd (egress of the slow path) need no lock: each
//   write(2) is one frame.
// - Nothing is allocated per frame: one burst buffer, a miss buffer reserved
//   at its cap, a flow table reserved at its cap (fastpath.h).

#include <napi.h>
#include <uv.h>

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "fastpath.h"
#include "records.h"

namespace tapswitch {

namespace fastpath {

namespace {

constexpr uint8_t kVnetNeedsCsum = 1, kVnetDataValid = 2;
constexpr uint8_t kGsoTcp4 = 1, kGsoTcp6 = 4, kGsoEcn = 0x80;

uint16_t Le16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }

}  // namespace

Flow* FlowTable::Match(int slot, const uint8_t* rec, size_t len, size_t hdr) {
  if (index_.empty() || len < hdr + 14) return nullptr;
  const uint8_t* f = rec + hdr;
  const size_t flen = len - hdr;
  if ((f[0] & 1) != 0) return nullptr;  // group dst: flooded by the slow path
  const uint16_t type = uint16_t((f[12] << 8) | f[13]);
  if (type == 0x8100 || type == 0x88a8 || type == 0x9100) return nullptr;  // a tag: the slow path classifies it
  auto it = index_.find(Key{Mac(f), (Mac(f + 6) << 16) | static_cast<uint64_t>(slot)});
  if (it == index_.end()) return nullptr;
  Flow& fl = flows_[it->second];
  if (hdr != 0) {
    const uint8_t flags = rec[0], gso = rec[1];
    if ((flags & ~(kVnetNeedsCsum | kVnetDataValid)) != 0) return nullptr;
    if (Le16(rec + 2) > flen) return nullptr;  // hdr_len beyond the frame: the receiving kernel refuses it
    if (gso == 0) {
      if (flen > fl.max_frame) return nullptr;
    } else {
      // A TCP super-frame whose segments fit the network (the slow path's checkOffload, simplified:
      // hdr_len from the kernel that built it); the egress kernel validates the header again on write.
      const uint8_t t = gso & ~kGsoEcn;
      const size_t hdr_len = Le16(rec + 2), mss = Le16(rec + 4);
      if ((t != kGsoTcp4 && t != kGsoTcp6) || (flags & kVnetNeedsCsum) == 0 || mss < 8 || hdr_len == 0 ||
          hdr_len + mss > fl.max_frame || flen > 65535 + 14 + 4)
        return nullptr;
    }
  } else if (flen > fl.max_frame) {
    return nullptr;
  }
  return &fl;
}

}  // namespace fastpath

namespace {

using namespace fastpath;

constexpr size_t kMaxPorts = 1024;
// One burst: at most this many reads, and it stops reading once it holds this
// many bytes (so a burst of 64 KiB GSO frames decides and writes a few at a time).
constexpr uint32_t kBurst = 64;
constexpr size_t kBurstBytes = 256 << 10;
// Per-port counters, cumulative (PORT_STAT_* in native/index.d.ts).
enum { P_RX_FRAMES, P_RX_BYTES, P_TX_FRAMES, P_TX_BYTES, P_TX_DROPPED, P_COUNT };
// Table-wide counters.
enum { F_HITS, F_MISSES, F_MISS_DROPPED, F_FLOWS, F_COUNT };

struct PortSlot {
  int fd = -1;  // -1 = free
  bool vnet = false;
  double stats[P_COUNT] = {};
};

// One frame of a burst: where it lies in the burst buffer, and (a hit) where it goes.
struct BurstFrame {
  size_t off = 0, len = 0;
  int out = -1;  // egress slot; -1 = not forwarded here
  int fd = -1;   // that slot's fd when decided
  bool sent = false;
};

uint64_t MacArg(const Napi::Value& v) {
  double d = v.As<Napi::Number>().DoubleValue();
  return d >= 0 && d < 281474976710656.0 ? static_cast<uint64_t>(d) : 0;
}

class FastPath : public Napi::ObjectWrap<FastPath> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "FastPath",
                       {
                           InstanceMethod<&FastPath::AddPort>("addPort"),
                           InstanceMethod<&FastPath::RemovePort>("removePort"),
                           InstanceMethod<&FastPath::Install>("install"),
                           InstanceMethod<&FastPath::Remove>("remove"),
                           InstanceMethod<&FastPath::Flush>("flush"),
                           InstanceMethod<&FastPath::FlowHits>("flowHits"),
                           InstanceMethod<&FastPath::PortStats>("portStats"),
                           InstanceMethod<&FastPath::Stats>("stats"),
                           InstanceMethod<&FastPath::Close>("close"),
                       });
  }

  // new FastPath(onMiss(slot, slab, start, end), maxFlows, missBytes)
  explicit FastPath(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FastPath>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsFunction() || !info[1].IsNumber() || !info[2].IsNumber()) {
      Napi::TypeError::New(env, "FastPath(onMiss, maxFlows, missBytes)").ThrowAsJavaScriptException();
      return;
    }
    double mf = info[1].As<Napi::Number>().DoubleValue(), mb = info[2].As<Napi::Number>().DoubleValue();
    if (!(mf >= 1 && mf <= 1 << 20) || !(mb >= 2 * (kMaxRecord + 8) && mb <= (64 << 20))) {
      Napi::RangeError::New(env, "maxFlows must be 1..1048576 and missBytes 2*64 KiB..64 MiB")
          .ThrowAsJavaScriptException();
      return;
    }
    flows_ = std::make_unique<FlowTable>(static_cast<size_t>(mf));
    misses_ = std::make_unique<MissQueue>(static_cast<size_t>(mb));
    on_miss_ = Napi::Persistent(info[0].As<Napi::Function>());
    ports_.resize(kMaxPorts);
    burst_.resize(kBurstBytes + kMaxRecord);
    efd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd_ < 0) {
      Napi::Error::New(env, std::string("eventfd: ") + strerror(errno)).ThrowAsJavaScriptException();
      return;
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      ::close(efd_);
      efd_ = -1;
      Napi::Error::New(env, "napi_get_uv_event_loop failed").ThrowAsJavaScriptException();
      return;
    }
    // Set before the thread starts and cleared only after it was joined: the thread reads it without the lock.
    async_ = new uv_async_t{};
    async_->data = this;
    uv_async_init(loop, async_, OnAsync);
    uv_unref(reinterpret_cast<uv_handle_t*>(async_));  // never keeps the process alive
    async_ctx_ = std::make_unique<Napi::AsyncContext>(env, "tapswitch:FastPath", Value());
    napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
    Ref();  // the thread and the async handle point at us until close()
    thread_ = std::thread([this] { Run(); });
  }

  ~FastPath() override { StopThread(); }

 private:
  // addPort(fd, vnet) -> slot
  Napi::Value AddPort(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber() || !info[1].IsBoolean())
      return Napi::TypeError::New(env, "addPort(fd, vnet)").ThrowAsJavaScriptException(), env.Undefined();
    if (closed_) return Napi::Error::New(env, "the FastPath is closed").ThrowAsJavaScriptException(), env.Undefined();
    int slot = -1;
    {
      std::lock_guard<std::mutex> g(mu_);
      for (size_t i = 0; i < kMaxPorts; i++)
        if (ports_[i].fd < 0) {
          slot = static_cast<int>(i);
          break;
        }
      if (slot >= 0) {
        PortSlot& p = ports_[slot];
        p = PortSlot{};
        p.fd = info[0].As<Napi::Number>().Int32Value();
        p.vnet = info[1].As<Napi::Boolean>().Value();
        ports_gen_++;
      }
    }
    if (slot < 0)
      return Napi::RangeError::New(env, "too many ports on one fast path").ThrowAsJavaScriptException(),
             env.Undefined();
    Wake();
    return Napi::Number::New(env, slot);
  }

  // removePort(slot): its flows go too; the thread never touches its fd again once this returns.
  void RemovePort(const Napi::CallbackInfo& info) {
    int slot = info[0].As<Napi::Number>().Int32Value();
    if (slot < 0 || static_cast<size_t>(slot) >= kMaxPorts) return;
    {
      std::unique_lock<std::mutex> g(mu_);
      ports_[slot].fd = -1;
      ports_gen_++;
      flows_->Clear();
      misses_->DropSlot(slot);
      // A burst begun before this may still read the fd, or write to it what it decided before:
      // wait for that one (no later burst can pick the slot). The wait releases the lock.
      const uint64_t upto = bursts_begun_;
      idle_.wait(g, [&] { return bursts_done_ >= upto; });
    }
    Wake();
  }

  // install(inSlot, dst, src, outSlot, maxFrame) -> flow index, or -1 when the table is full
  Napi::Value Install(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 5 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsNumber() ||
        !info[4].IsNumber())
      return Napi::TypeError::New(env, "install(inSlot, dst, src, outSlot, maxFrame)").ThrowAsJavaScriptException(),
             env.Undefined();
    const size_t max_frame = static_cast<size_t>(std::max(0.0, info[4].As<Napi::Number>().DoubleValue()));
    int in = info[0].As<Napi::Number>().Int32Value(), out = info[3].As<Napi::Number>().Int32Value();
    if (in < 0 || out < 0 || static_cast<size_t>(in) >= kMaxPorts || static_cast<size_t>(out) >= kMaxPorts || in == out)
      return Napi::Number::New(env, -1);
    Key k{MacArg(info[1]), (MacArg(info[2]) << 16) | static_cast<uint64_t>(in)};
    std::lock_guard<std::mutex> g(mu_);
    if (ports_[in].fd < 0 || ports_[out].fd < 0 || ports_[in].vnet != ports_[out].vnet)
      return Napi::Number::New(env, -1);
    return Napi::Number::New(env, flows_->Install(k, out, max_frame));
  }

  void Remove(const Napi::CallbackInfo& info) {
    int f = info[0].As<Napi::Number>().Int32Value();
    std::lock_guard<std::mutex> g(mu_);
    flows_->Remove(f);
  }

  void Flush(const Napi::CallbackInfo&) {
    std::lock_guard<std::mutex> g(mu_);
    flows_->Clear();
  }

  // flowHits(out: Float64Array): cumulative hits of each flow index
  void FlowHits(const Napi::CallbackInfo& info) {
    auto out = info[0].As<Napi::Float64Array>();
    std::lock_guard<std::mutex> g(mu_);
    size_t n = std::min(out.ElementLength(), flows_->capacity());
    for (size_t i = 0; i < n; i++) out[i] = flows_->hits(i);
  }

  // portStats(slot, out: Float64Array): the slot's PORT_STAT_* counters
  void PortStats(const Napi::CallbackInfo& info) {
    int slot = info[0].As<Napi::Number>().Int32Value();
    auto out = info[1].As<Napi::Float64Array>();
    if (slot < 0 || static_cast<size_t>(slot) >= kMaxPorts || out.ElementLength() < P_COUNT) return;
    std::lock_guard<std::mutex> g(mu_);
    for (int i = 0; i < P_COUNT; i++) out[i] = ports_[slot].stats[i];
  }

  void Stats(const Napi::CallbackInfo& info) {
    auto out = info[0].As<Napi::Float64Array>();
    if (out.ElementLength() < F_COUNT) return;
    std::lock_guard<std::mutex> g(mu_);
    for (int i = 0; i < F_COUNT; i++) out[i] = stats_[i];
    out[F_FLOWS] = static_cast<double>(flows_->size());
  }

  void Close(const Napi::CallbackInfo& info) {
    if (closed_) return;
    StopThread();
    napi_remove_env_cleanup_hook(info.Env(), OnEnvCleanup, this);
    CloseAsync();
    on_miss_.Reset();
    slab_.Reset();
    Unref();
  }

  void CloseAsync() {
    if (async_ == nullptr) return;
    async_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(async_), [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
    async_ = nullptr;
  }

  static void OnEnvCleanup(void* arg) {
    auto* self = static_cast<FastPath*>(arg);
    self->StopThread();
    self->CloseAsync();
  }

  void StopThread() {
    closed_ = true;
    if (!thread_.joinable()) return;
    stop_.store(true);
    Wake();
    thread_.join();
    if (efd_ >= 0) {
      ::close(efd_);
      efd_ = -1;
    }
  }

  void Wake() {
    uint64_t one = 1;
    if (efd_ >= 0) {
      ssize_t r = ::write(efd_, &one, sizeof one);
      (void)r;
    }
  }

  // The thread: poll the eventfd and every port's fd; read bursts; hits out, misses to JS.
  void Run() {
    std::vector<pollfd> fds;
    std::vector<int> slots;
    fds.reserve(kMaxPorts + 1);
    slots.reserve(kMaxPorts + 1);
    uint64_t seen_gen = ~0ull;
    while (!stop_.load()) {
      {
        std::lock_guard<std::mutex> g(mu_);
        if (seen_gen != ports_gen_) {
          seen_gen = ports_gen_;
          fds.clear();
          slots.clear();
          fds.push_back(pollfd{efd_, POLLIN, 0});
          slots.push_back(-1);
          for (size_t i = 0; i < kMaxPorts; i++)
            if (ports_[i].fd >= 0) {
              fds.push_back(pollfd{ports_[i].fd, POLLIN, 0});
              slots.push_back(static_cast<int>(i));
            }
        }
      }
      // A removed port's fd may still be in this set: poll() only waits on it, and the eventfd
      // (removePort wakes it) makes us rebuild the set before any burst could read it.
      int r = ::poll(fds.data(), fds.size(), -1);
      if (r < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (fds[0].revents != 0) {
        uint64_t v;
        ssize_t n = ::read(efd_, &v, sizeof v);
        (void)n;
        continue;
      }
      bool missed = false;
      for (size_t i = 1; i < fds.size(); i++) {
        if (fds[i].revents == 0) continue;
        if ((fds[i].revents & (POLLERR | POLLNVAL | POLLHUP)) != 0 && (fds[i].revents & POLLIN) == 0) {
          // The device went away: stop polling it (JS learns of it on its own side).
          std::lock_guard<std::mutex> g(mu_);
          if (ports_[slots[i]].fd == fds[i].fd) {
            ports_[slots[i]].fd = -1;
            ports_gen_++;
            flows_->Clear();
          }
          continue;
        }
        missed |= Burst(slots[i], fds[i].fd);
      }
      if (missed) uv_async_send(async_);
    }
  }

  // One burst from `slot`: true if a miss was queued for JS. The lock is
  // taken to begin, to decide and to publish; never across read or write.
  bool Burst(int slot, int fd) {
    size_t hdr;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (ports_[slot].fd != fd) return false;  // removed (and maybe reused) since poll()
      hdr = ports_[slot].vnet ? kVnetHdrLen : 0;
      bursts_begun_++;
    }
    const uint32_t n = ReadBurst(fd);
    bool missed = false;
    {
      std::lock_guard<std::mutex> g(mu_);
      missed = Decide(slot, fd, hdr, n);
    }
    WriteHits(n);
    {
      std::lock_guard<std::mutex> g(mu_);
      Publish(n, hdr);
      bursts_done_++;
    }
    idle_.notify_all();  // a removePort may wait for this burst
    return missed;
  }

  // Read up to kBurst frames (or kBurstBytes) into burst_. No lock: removePort waits for us.
  uint32_t ReadBurst(int fd) {
    uint8_t* buf = burst_.data();
    size_t used = 0;
    uint32_t n = 0;
    while (n < kBurst && used + kMaxRecord <= burst_.size()) {
      ssize_t r;
      do r = ::read(fd, buf + used, kMaxRecord);
      while (r < 0 && errno == EINTR);
      // A length over what was asked (a broken fd or interposer; issue 12, finding 16) is never trusted.
      if (r <= 0 || static_cast<size_t>(r) > kMaxRecord) break;
      frames_[n].off = used;
      frames_[n].len = static_cast<size_t>(r);
      used += static_cast<size_t>(r);
      n++;
    }
    return n;
  }

  // Under mu_: each frame a hit (its egress slot and fd taken now) or a miss
  // queued for JS. Frames of a port removed since the burst began are dropped.
  bool Decide(int slot, int fd, size_t hdr, uint32_t n) {
    bool missed = false;
    PortSlot& in = ports_[slot];
    const bool gone = in.fd != fd;
    for (uint32_t i = 0; i < n; i++) {
      BurstFrame& f = frames_[i];
      f.out = -1;
      if (gone) continue;
      const uint8_t* rec = burst_.data() + f.off;
      Flow* fl = flows_->Match(slot, rec, f.len, hdr);
      if (fl != nullptr && ports_[fl->out].fd >= 0) {
        fl->hits++;
        stats_[F_HITS]++;
        in.stats[P_RX_FRAMES]++;
        in.stats[P_RX_BYTES] += static_cast<double>(f.len - hdr);
        f.out = fl->out;
        f.fd = ports_[fl->out].fd;
        continue;
      }
      stats_[F_MISSES]++;
      if (misses_->Push(slot, rec, f.len))
        missed = true;
      else
        stats_[F_MISS_DROPPED]++;
    }
    return missed;
  }

  // Write the hits, as read. No lock: the fds stay open until this burst is done.
  void WriteHits(uint32_t n) {
    const uint8_t* buf = burst_.data();
    for (uint32_t i = 0; i < n; i++) {
      BurstFrame& f = frames_[i];
      if (f.out < 0) continue;
      ssize_t w;
      do w = ::write(f.fd, buf + f.off, f.len);
      while (w < 0 && errno == EINTR);
      f.sent = w >= 0;
    }
  }

  // Under mu_: the egress counters of what was written (or refused: the queue full, the link down).
  void Publish(uint32_t n, size_t hdr) {
    for (uint32_t i = 0; i < n; i++) {
      const BurstFrame& f = frames_[i];
      if (f.out < 0) continue;
      PortSlot& eg = ports_[f.out];
      if (eg.fd != f.fd) continue;  // removed meanwhile: JS folded its counters in before
      if (!f.sent) {
        eg.stats[P_TX_DROPPED]++;
        continue;
      }
      eg.stats[P_TX_FRAMES]++;
      eg.stats[P_TX_BYTES] += static_cast<double>(f.len - hdr);
    }
  }

  // Main thread: hand the queued misses to JS, one call per run of one slot.
  static void OnAsync(uv_async_t* h) {
    auto* self = static_cast<FastPath*>(h->data);
    if (self != nullptr) self->Drain();
  }

  void Drain() {
    {
      std::lock_guard<std::mutex> g(mu_);
      misses_->Take();
    }
    std::vector<uint8_t>& d = misses_->draining();  // ours alone until the next Take
    if (d.empty() || on_miss_.IsEmpty()) {
      d.clear();
      return;
    }
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    size_t i = 0;
    const size_t end = d.size();
    while (i < end && !on_miss_.IsEmpty()) {
      const uint32_t slot = ReadBE32(&d[i]);
      size_t j = i, bytes = 0;
      while (j < end && ReadBE32(&d[j]) == slot) {
        const size_t n = ReadBE32(&d[j + 4]);
        bytes += kRecordHeader + n;
        j += 8 + n;
      }
      // JS may keep views of what it was given (a ws send queue): a used slab is never written again.
      slab_.Reserve(env, bytes);
      const size_t start = slab_.offset();
      for (size_t k = i; k < j;) {
        const size_t n = ReadBE32(&d[k + 4]);
        memcpy(slab_.tail(), &d[k + 4], kRecordHeader + n);
        slab_.Commit(kRecordHeader + n);
        k += 8 + n;
      }
      Napi::Function fn = on_miss_.Value();
      fn.MakeCallback(Value(),
                      {Napi::Number::New(env, slot), slab_.Value(), Napi::Number::New(env, static_cast<double>(start)),
                       Napi::Number::New(env, static_cast<double>(slab_.offset()))},
                      *async_ctx_);
      if (env.IsExceptionPending()) {
        Napi::Error e = env.GetAndClearPendingException();
        napi_fatal_exception(env, e.Value());
      }
      i = j;
    }
    d.clear();
  }

  std::mutex mu_;
  std::condition_variable idle_;  // bursts_done_ moved
  std::thread thread_;
  std::atomic<bool> stop_{false};
  bool closed_ = false;
  int efd_ = -1;
  uv_async_t* async_ = nullptr;
  std::unique_ptr<Napi::AsyncContext> async_ctx_;
  Napi::FunctionReference on_miss_;
  // Under mu_:
  std::unique_ptr<FlowTable> flows_;
  std::unique_ptr<MissQueue> misses_;
  std::vector<PortSlot> ports_;
  uint64_t ports_gen_ = 0;
  uint64_t bursts_begun_ = 0, bursts_done_ = 0;
  double stats_[F_COUNT] = {};
  // The thread's own: the frames of the burst in flight.
  std::vector<uint8_t> burst_;
  BurstFrame frames_[kBurst];
  // The main thread's own.
  Slab slab_;
};

}  // namespace

void InitFastPath(Napi::Env env, Napi::Object exports) {
  exports.Set("FastPath", FastPath::Init(env));
  exports.Set("PORT_STAT_COUNT", Napi::Number::New(env, P_COUNT));
  exports.Set("FASTPATH_STAT_COUNT", Napi::Number::New(env, F_COUNT));
}

}  // namespace tapswitch
