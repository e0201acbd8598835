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
// - The lock: reads, lookups and writes of a burst happen under mu_, and
//   removePort takes it too, so once removePort returns the thread never
//   touches that fd again (JS closes it after). JS's own writes to a TAP fd
//   (egress of the slow path) need no lock: each write(2) is one frame.
// - Nothing is allocated per frame: one read buffer, a miss buffer reserved
//   at its cap, a flow table reserved at its cap.

#include <napi.h>
#include <uv.h>

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace tapswitch {

namespace {

constexpr size_t kVnetHdrLen = 10;
constexpr size_t kMaxRecord = 65536 + 64 + kVnetHdrLen;
constexpr size_t kMaxPorts = 1024;
constexpr uint32_t kBurst = 64;
constexpr size_t kMinSlab = 1 << 20;
// Per-port counters, cumulative (PORT_STAT_* in native/index.d.ts).
enum { P_RX_FRAMES, P_RX_BYTES, P_TX_FRAMES, P_TX_BYTES, P_TX_DROPPED, P_COUNT };
// Table-wide counters.
enum { F_HITS, F_MISSES, F_MISS_DROPPED, F_FLOWS, F_COUNT };

constexpr uint8_t kVnetNeedsCsum = 1, kVnetDataValid = 2;
constexpr uint8_t kGsoTcp4 = 1, kGsoTcp6 = 4, kGsoEcn = 0x80;

struct Key {
  uint64_t dst;  // 48 bits
  uint64_t src_slot;  // src MAC << 16 | ingress slot
  bool operator==(const Key& o) const { return dst == o.dst && src_slot == o.src_slot; }
};
struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = k.dst * 0x9E3779B97F4A7C15ull ^ (k.src_slot + 0x632BE59BD9B4E019ull) * 0xC2B2AE3D27D4EB4Full;
    return static_cast<size_t>(h ^ (h >> 29));
  }
};

struct Flow {
  Key key;
  int out = -1;  // egress slot; -1 = free
  size_t max_frame = 0;  // the network's largest frame when installed (a reload flushes every flow)
  double hits = 0;
};

struct PortSlot {
  int fd = -1;  // -1 = free
  bool vnet = false;
  double stats[P_COUNT] = {};
};

uint64_t Mac(const uint8_t* p) {
  return (uint64_t(p[0]) << 40) | (uint64_t(p[1]) << 32) | (uint64_t(p[2]) << 24) | (uint64_t(p[3]) << 16) |
         (uint64_t(p[4]) << 8) | uint64_t(p[5]);
}

uint64_t MacArg(const Napi::Value& v) {
  double d = v.As<Napi::Number>().DoubleValue();
  return d >= 0 && d < 281474976710656.0 ? static_cast<uint64_t>(d) : 0;
}

void WriteBE32(uint8_t* p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
uint32_t ReadBE32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }
uint16_t Le16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }

class FastPath : public Napi::ObjectWrap<FastPath> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "FastPath", {
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
    if (!info[0].IsFunction() || !info[1].IsNumber() || !info[2].IsNumber())
      { Napi::TypeError::New(env, "FastPath(onMiss, maxFlows, missBytes)").ThrowAsJavaScriptException(); return; }
    double mf = info[1].As<Napi::Number>().DoubleValue(), mb = info[2].As<Napi::Number>().DoubleValue();
    if (!(mf >= 1 && mf <= 1 << 20) || !(mb >= 2 * (kMaxRecord + 8) && mb <= (64 << 20)))
      { Napi::RangeError::New(env, "maxFlows must be 1..1048576 and missBytes 2*64 KiB..64 MiB").ThrowAsJavaScriptException(); return; }
    max_flows_ = static_cast<size_t>(mf);
    miss_cap_ = static_cast<size_t>(mb);
    on_miss_ = Napi::Persistent(info[0].As<Napi::Function>());
    flows_.resize(max_flows_);
    free_.reserve(max_flows_);
    for (size_t i = max_flows_; i-- > 0;) free_.push_back(static_cast<int>(i));
    index_.reserve(max_flows_ * 2);
    pending_.reserve(miss_cap_);
    draining_.reserve(miss_cap_);
    ports_.resize(kMaxPorts);
    read_buf_.resize(kMaxRecord);
    efd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd_ < 0) { Napi::Error::New(env, std::string("eventfd: ") + strerror(errno)).ThrowAsJavaScriptException(); return; }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      ::close(efd_); efd_ = -1;
      Napi::Error::New(env, "napi_get_uv_event_loop failed").ThrowAsJavaScriptException();
      return;
    }
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
      for (size_t i = 0; i < kMaxPorts; i++) if (ports_[i].fd < 0) { slot = static_cast<int>(i); break; }
      if (slot >= 0) {
        PortSlot& p = ports_[slot];
        p = PortSlot{};
        p.fd = info[0].As<Napi::Number>().Int32Value();
        p.vnet = info[1].As<Napi::Boolean>().Value();
        ports_gen_++;
      }
    }
    if (slot < 0) return Napi::RangeError::New(env, "too many ports on one fast path").ThrowAsJavaScriptException(), env.Undefined();
    Wake();
    return Napi::Number::New(env, slot);
  }

  // removePort(slot): its flows go too; the thread never reads its fd again once this returns.
  void RemovePort(const Napi::CallbackInfo& info) {
    int slot = info[0].As<Napi::Number>().Int32Value();
    if (slot < 0 || static_cast<size_t>(slot) >= kMaxPorts) return;
    {
      std::lock_guard<std::mutex> g(mu_);
      ports_[slot].fd = -1;
      ports_gen_++;
      FlushLocked();
      // Its misses still queued go too: the slot may be reused before they are drained.
      size_t w = 0;
      for (size_t r = 0; r < pending_.size();) {
        const size_t n = 8 + ReadBE32(&pending_[r + 4]);
        if (ReadBE32(&pending_[r]) != static_cast<uint32_t>(slot)) { if (w != r) memmove(&pending_[w], &pending_[r], n); w += n; }
        r += n;
      }
      pending_.resize(w);
    }
    Wake();
  }

  // install(inSlot, dst, src, outSlot, maxFrame) -> flow index, or -1 when the table is full
  Napi::Value Install(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 5 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsNumber() || !info[4].IsNumber())
      return Napi::TypeError::New(env, "install(inSlot, dst, src, outSlot, maxFrame)").ThrowAsJavaScriptException(), env.Undefined();
    const size_t max_frame = static_cast<size_t>(std::max(0.0, info[4].As<Napi::Number>().DoubleValue()));
    int in = info[0].As<Napi::Number>().Int32Value(), out = info[3].As<Napi::Number>().Int32Value();
    if (in < 0 || out < 0 || static_cast<size_t>(in) >= kMaxPorts || static_cast<size_t>(out) >= kMaxPorts || in == out)
      return Napi::Number::New(env, -1);
    Key k{MacArg(info[1]), (MacArg(info[2]) << 16) | static_cast<uint64_t>(in)};
    std::lock_guard<std::mutex> g(mu_);
    if (ports_[in].fd < 0 || ports_[out].fd < 0 || ports_[in].vnet != ports_[out].vnet) return Napi::Number::New(env, -1);
    auto it = index_.find(k);
    if (it != index_.end()) { flows_[it->second].out = out; flows_[it->second].max_frame = max_frame; return Napi::Number::New(env, it->second); }
    if (free_.empty()) return Napi::Number::New(env, -1);
    int f = free_.back();
    free_.pop_back();
    flows_[f].key = k;
    flows_[f].out = out;
    flows_[f].max_frame = max_frame;
    flows_[f].hits = 0;
    index_.emplace(k, f);
    return Napi::Number::New(env, f);
  }

  void Remove(const Napi::CallbackInfo& info) {
    int f = info[0].As<Napi::Number>().Int32Value();
    std::lock_guard<std::mutex> g(mu_);
    if (f < 0 || static_cast<size_t>(f) >= max_flows_ || flows_[f].out < 0) return;
    index_.erase(flows_[f].key);
    flows_[f].out = -1;
    free_.push_back(f);
  }

  void Flush(const Napi::CallbackInfo&) {
    std::lock_guard<std::mutex> g(mu_);
    FlushLocked();
  }

  void FlushLocked() {
    if (index_.empty()) return;
    for (auto& kv : index_) { flows_[kv.second].out = -1; free_.push_back(kv.second); }
    index_.clear();
  }

  // flowHits(out: Float64Array): cumulative hits of each flow index
  void FlowHits(const Napi::CallbackInfo& info) {
    auto out = info[0].As<Napi::Float64Array>();
    std::lock_guard<std::mutex> g(mu_);
    size_t n = std::min(out.ElementLength(), max_flows_);
    for (size_t i = 0; i < n; i++) out[i] = flows_[i].hits;
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
    out[F_FLOWS] = static_cast<double>(index_.size());
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
    if (efd_ >= 0) { ::close(efd_); efd_ = -1; }
  }

  void Wake() {
    uint64_t one = 1;
    if (efd_ >= 0) { ssize_t r = ::write(efd_, &one, sizeof one); (void)r; }
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
          fds.clear(); slots.clear();
          fds.push_back(pollfd{efd_, POLLIN, 0}); slots.push_back(-1);
          for (size_t i = 0; i < kMaxPorts; i++)
            if (ports_[i].fd >= 0) { fds.push_back(pollfd{ports_[i].fd, POLLIN, 0}); slots.push_back(static_cast<int>(i)); }
        }
      }
      int r = ::poll(fds.data(), fds.size(), -1);
      if (r < 0) { if (errno == EINTR) continue; break; }
      if (fds[0].revents != 0) { uint64_t v; ssize_t n = ::read(efd_, &v, sizeof v); (void)n; continue; }
      bool missed = false;
      for (size_t i = 1; i < fds.size(); i++) {
        if (fds[i].revents == 0) continue;
        if ((fds[i].revents & (POLLERR | POLLNVAL | POLLHUP)) != 0 && (fds[i].revents & POLLIN) == 0) {
          // The device went away: stop polling it (JS learns of it on its own side).
          std::lock_guard<std::mutex> g(mu_);
          if (ports_[slots[i]].fd == fds[i].fd) { ports_[slots[i]].fd = -1; ports_gen_++; FlushLocked(); }
          continue;
        }
        missed |= Burst(slots[i], fds[i].fd);
      }
      if (missed) {
        std::lock_guard<std::mutex> g(mu_);
        if (async_ != nullptr) uv_async_send(async_);
      }
    }
  }

  // One burst from `slot`: true if a miss was queued for JS.
  bool Burst(int slot, int fd) {
    bool missed = false;
    std::lock_guard<std::mutex> g(mu_);
    PortSlot& in = ports_[slot];
    if (in.fd != fd) return false;  // removed (and maybe reused) since poll()
    uint8_t* buf = read_buf_.data();
    const size_t hdr = in.vnet ? kVnetHdrLen : 0;
    for (uint32_t reads = 0; reads < kBurst; reads++) {
      ssize_t n;
      do n = ::read(fd, buf, kMaxRecord); while (n < 0 && errno == EINTR);
      if (n <= 0) break;
      size_t len = static_cast<size_t>(n);
      int out = Lookup(slot, buf, len, hdr);
      if (out < 0) {
        stats_[F_MISSES]++;
        if (pending_.size() + 8 + len > miss_cap_) { stats_[F_MISS_DROPPED]++; continue; }
        size_t at = pending_.size();
        pending_.resize(at + 8 + len);  // within the reserved capacity: no allocation
        WriteBE32(&pending_[at], static_cast<uint32_t>(slot));
        WriteBE32(&pending_[at + 4], static_cast<uint32_t>(len));
        memcpy(&pending_[at + 8], buf, len);
        missed = true;
        continue;
      }
      stats_[F_HITS]++;
      const double bytes = static_cast<double>(len - hdr);
      in.stats[P_RX_FRAMES]++;
      in.stats[P_RX_BYTES] += bytes;
      PortSlot& eg = ports_[out];
      ssize_t w;
      do w = ::write(eg.fd, buf, len); while (w < 0 && errno == EINTR);
      if (w < 0) { eg.stats[P_TX_DROPPED]++; continue; }
      eg.stats[P_TX_FRAMES]++;
      eg.stats[P_TX_BYTES] += bytes;
    }
    return missed;
  }

  // The egress slot of the frame's flow, or -1: a miss. Under mu_.
  int Lookup(int slot, const uint8_t* rec, size_t len, size_t hdr) {
    if (index_.empty() || len < hdr + 14) return -1;
    const uint8_t* f = rec + hdr;
    const size_t flen = len - hdr;
    if ((f[0] & 1) != 0) return -1;  // group dst: flooded by the slow path
    const uint16_t type = uint16_t((f[12] << 8) | f[13]);
    if (type == 0x8100 || type == 0x88a8 || type == 0x9100) return -1;  // a tag: the slow path classifies it
    auto it = index_.find(Key{Mac(f), (Mac(f + 6) << 16) | static_cast<uint64_t>(slot)});
    if (it == index_.end()) return -1;
    Flow& fl = flows_[it->second];
    if (ports_[fl.out].fd < 0) return -1;
    if (hdr != 0) {
      const uint8_t flags = rec[0], gso = rec[1];
      if ((flags & ~(kVnetNeedsCsum | kVnetDataValid)) != 0) return -1;
      if (Le16(rec + 2) > flen) return -1;  // hdr_len beyond the frame: the receiving kernel refuses it
      if (gso == 0) {
        if (flen > fl.max_frame) return -1;
      } else {
        // A TCP super-frame whose segments fit the network (the slow path's checkOffload, simplified:
        // hdr_len from the kernel that built it); the egress kernel validates the header again on write.
        const uint8_t t = gso & ~kGsoEcn;
        const size_t hdr_len = Le16(rec + 2), mss = Le16(rec + 4);
        if ((t != kGsoTcp4 && t != kGsoTcp6) || (flags & kVnetNeedsCsum) == 0 || mss < 8 || hdr_len == 0 ||
            hdr_len + mss > fl.max_frame || flen > 65535 + 14 + 4)
          return -1;
      }
    } else if (flen > fl.max_frame) {
      return -1;
    }
    fl.hits++;
    return fl.out;
  }

  // Main thread: hand the queued misses to JS, one call per run of one slot.
  static void OnAsync(uv_async_t* h) {
    auto* self = static_cast<FastPath*>(h->data);
    if (self != nullptr) self->Drain();
  }

  void Drain() {
    {
      std::lock_guard<std::mutex> g(mu_);
      draining_.swap(pending_);  // both reserved at the cap: no allocation
    }
    if (draining_.empty() || on_miss_.IsEmpty()) { draining_.clear(); return; }
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    size_t i = 0;
    const size_t end = draining_.size();
    while (i < end && !on_miss_.IsEmpty()) {
      const uint32_t slot = ReadBE32(&draining_[i]);
      size_t j = i, bytes = 0;
      while (j < end && ReadBE32(&draining_[j]) == slot) { const size_t n = ReadBE32(&draining_[j + 4]); bytes += 4 + n; j += 8 + n; }
      if (slab_.IsEmpty() || slab_len_ - slab_off_ < bytes) NewSlab(env, bytes);
      const size_t start = slab_off_;
      for (size_t k = i; k < j;) {
        const size_t n = ReadBE32(&draining_[k + 4]);
        memcpy(slab_data_ + slab_off_, &draining_[k + 4], 4 + n);
        slab_off_ += 4 + n;
        k += 8 + n;
      }
      Napi::Function fn = on_miss_.Value();
      fn.MakeCallback(Value(), {Napi::Number::New(env, slot), slab_.Value(), Napi::Number::New(env, static_cast<double>(start)),
                                Napi::Number::New(env, static_cast<double>(slab_off_))}, *async_ctx_);
      if (env.IsExceptionPending()) {
        Napi::Error e = env.GetAndClearPendingException();
        napi_fatal_exception(env, e.Value());
      }
      i = j;
    }
    draining_.clear();
  }

  // JS may keep views of what it was given (a ws send queue): a used slab is never written again.
  void NewSlab(Napi::Env env, size_t need) {
    size_t len = std::max(kMinSlab, need);
    Napi::Buffer<uint8_t> b = Napi::Buffer<uint8_t>::New(env, len);
    slab_ = Napi::Persistent(b);
    slab_data_ = b.Data();
    slab_len_ = len;
    slab_off_ = 0;
  }

  std::mutex mu_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  bool closed_ = false;
  int efd_ = -1;
  uv_async_t* async_ = nullptr;
  std::unique_ptr<Napi::AsyncContext> async_ctx_;
  Napi::FunctionReference on_miss_;
  size_t max_flows_ = 0, miss_cap_ = 0;
  std::vector<Flow> flows_;
  std::vector<int> free_;
  std::unordered_map<Key, int, KeyHash> index_;
  std::vector<PortSlot> ports_;
  uint64_t ports_gen_ = 0;
  std::vector<uint8_t> read_buf_;
  std::vector<uint8_t> pending_, draining_;
  double stats_[F_COUNT] = {};
  Napi::Reference<Napi::Buffer<uint8_t>> slab_;
  uint8_t* slab_data_ = nullptr;
  size_t slab_len_ = 0, slab_off_ = 0;
};

}  // namespace

void InitFastPath(Napi::Env env, Napi::Object exports) {
  exports.Set("FastPath", FastPath::Init(env));
  exports.Set("PORT_STAT_COUNT", Napi::Number::New(env, P_COUNT));
  exports.Set("FASTPATH_STAT_COUNT", Napi::Number::New(env, F_COUNT));
}

}  // namespace tapswitch
