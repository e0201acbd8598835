// The fast path's datapath: the thread and the rules of a hit. The design
// (why a thread, the lock, removed ports, flushed flows) is fastpath.cc's
// header; the tables are datapath.h's.

#include "datapath.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>

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

Datapath::Datapath(size_t max_flows, size_t miss_bytes) : flows_(max_flows), misses_(miss_bytes) {
  ports_.resize(kMaxPorts);
  burst_.resize(kBurstBytes + kMaxRecord);
}

int Datapath::Start(void (*notify)(void*), void* arg) {
  efd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd_ < 0) return errno;
  notify_ = notify;
  notify_arg_ = arg;
  thread_ = std::thread([this] { Run(); });
  return 0;
}

void Datapath::Stop() {
  if (thread_.joinable()) {
    stop_.store(true);
    Wake();
    thread_.join();
  }
  if (efd_ >= 0) {
    ::close(efd_);
    efd_ = -1;
  }
}

int Datapath::AddPort(int fd, bool vnet) {
  int slot = -1;
  {
    std::lock_guard<std::mutex> g(mu_);
    for (size_t i = 0; i < kMaxPorts && slot < 0; i++)
      if (ports_[i].fd < 0) slot = static_cast<int>(i);
    if (slot < 0) return -1;
    ports_[slot] = PortSlot{};
    ports_[slot].fd = fd;
    ports_[slot].vnet = vnet;
    ports_gen_++;
  }
  Wake();
  return slot;
}

void Datapath::RemovePort(int slot) {
  if (slot < 0 || static_cast<size_t>(slot) >= kMaxPorts) return;
  {
    std::unique_lock<std::mutex> g(mu_);
    ports_[slot].fd = -1;
    ports_gen_++;
    flows_.Clear();
    misses_.DropSlot(slot);
    // A burst begun before this may still read the fd, or write to it what it decided before:
    // wait for that one (no later burst can pick the slot). The wait releases the lock.
    const uint64_t upto = bursts_begun_;
    idle_.wait(g, [&] { return bursts_done_ >= upto; });
  }
  Wake();
}

int Datapath::Install(int in, uint64_t dst, uint64_t src, int out, size_t max_frame) {
  if (in < 0 || out < 0 || static_cast<size_t>(in) >= kMaxPorts || static_cast<size_t>(out) >= kMaxPorts || in == out)
    return -1;
  std::lock_guard<std::mutex> g(mu_);
  if (ports_[in].fd < 0 || ports_[out].fd < 0 || ports_[in].vnet != ports_[out].vnet) return -1;
  return flows_.Install(Key{dst, (src << 16) | static_cast<uint64_t>(in)}, out, max_frame);
}

void Datapath::Remove(int flow) {
  std::lock_guard<std::mutex> g(mu_);
  flows_.Remove(flow);
}

void Datapath::Flush() {
  std::unique_lock<std::mutex> g(mu_);
  flows_.Clear();
  // A burst begun before this may still write what it decided under the old flows:
  // wait for it, so that a disable or a capture takes effect once flush() returns.
  const uint64_t upto = bursts_begun_;
  idle_.wait(g, [&] { return bursts_done_ >= upto; });
}

void Datapath::FlowHits(double* out, size_t n) {
  std::lock_guard<std::mutex> g(mu_);
  n = std::min(n, flows_.capacity());
  for (size_t i = 0; i < n; i++) out[i] = flows_.hits(i);
}

void Datapath::PortStats(int slot, double* out) {
  if (slot < 0 || static_cast<size_t>(slot) >= kMaxPorts) return;
  std::lock_guard<std::mutex> g(mu_);
  std::copy(ports_[slot].stats, ports_[slot].stats + P_COUNT, out);
}

void Datapath::Stats(double* out) {
  std::lock_guard<std::mutex> g(mu_);
  std::copy(stats_, stats_ + F_COUNT, out);
  out[F_FLOWS] = static_cast<double>(flows_.size());
}

std::vector<uint8_t>& Datapath::TakeMisses() {
  std::lock_guard<std::mutex> g(mu_);
  misses_.Take();
  return misses_.draining();
}

void Datapath::Wake() {
  uint64_t one = 1;
  if (efd_ >= 0) {
    ssize_t r = ::write(efd_, &one, sizeof one);
    (void)r;
  }
}

// The thread: poll the eventfd and every port's fd; read bursts; hits out, misses to JS.
void Datapath::Run() {
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
          flows_.Clear();
        }
        continue;
      }
      missed |= Burst(slots[i], fds[i].fd);
    }
    if (missed) notify_(notify_arg_);
  }
}

// One burst from `slot`: true if a miss was queued for JS. The lock is
// taken to begin, to decide and to publish; never across read or write.
bool Datapath::Burst(int slot, int fd) {
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
uint32_t Datapath::ReadBurst(int fd) {
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
bool Datapath::Decide(int slot, int fd, size_t hdr, uint32_t n) {
  bool missed = false;
  PortSlot& in = ports_[slot];
  const bool gone = in.fd != fd;
  for (uint32_t i = 0; i < n; i++) {
    BurstFrame& f = frames_[i];
    f.out = -1;
    if (gone) continue;
    const uint8_t* rec = burst_.data() + f.off;
    Flow* fl = flows_.Match(slot, rec, f.len, hdr);
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
    if (misses_.Push(slot, rec, f.len))
      missed = true;
    else
      stats_[F_MISS_DROPPED]++;
  }
  return missed;
}

// Write the hits, as read. No lock: the fds stay open until this burst is done.
void Datapath::WriteHits(uint32_t n) {
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
void Datapath::Publish(uint32_t n, size_t hdr) {
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

}  // namespace fastpath
}  // namespace tapswitch
